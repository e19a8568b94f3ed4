"""The real-footage corpus: public, unlabelled video of people, listed in a committed manifest
(`manifest`) and rebuilt into `.cache/real_footage/{train,val}/` (`build`,
`scripts/build_real_footage.py`). See the README, "Real footage corpus"."""

from export.real_footage.manifest import (
    DEFAULT_MANIFEST,
    SPLITS,
    Clip,
    CorpusMissingError,
    Manifest,
    ManifestError,
    Source,
    built_clip_files,
    check_split_by_source,
    clip_file,
    corpus_root,
    load_manifest,
)

__all__ = [
    "DEFAULT_MANIFEST", "SPLITS", "Clip", "CorpusMissingError", "Manifest", "ManifestError", "Source",
    "built_clip_files", "check_split_by_source", "clip_file", "corpus_root", "load_manifest",
]
