"""Real, human-labelled temporal action-segmentation data for the benchmarks.

Modules, by what they do:
- `corpus`: `LabelledVideo`, the one owner of a normalised video file
  (`.cache/real_labelled/<dataset>/<video>.npz`: features, frame labels, fps, label names) and
  its ground-truth segments; `load_corpus` reads a built corpus;
- `manifest`: the committed manifest (`benchmarks/data/real_labelled_manifest.json`) of every
  source file (repository, commit, path, sha256, licence) and the sha256-checked reader of those
  files from a fetched git directory or a clone;
- `sources`: one converter per dataset, from the verified source files to `LabelledVideo`s;
- `build`: the command line behind `scripts/build_real_labelled.py`.

Nothing here downloads anything: the source repositories are fetched by a person (or a clone is
made) and their path is given to the builder.
"""
