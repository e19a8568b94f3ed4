"""`laps-calibrate run`: choose the hysteresis thresholds for one model and one camera view.

Takes recorded video (files, a folder, or `synthetic://` specs) and runs it through the device's
own pipeline (tracker, tokenizer, energy) — or reads energy traces the device recorded with
`laps-edge run --record-energy` — then sweeps hysteresis parameters on the device's own energy
kernel. Unsupervised (default): keeps the set that best reproduces the Otsu pseudo-labels of the
velocity-energy proxy; by default theta_on alone, scored by the geometric mean of F1 and Youden's
J (J alone for velocity energy). Labelled (--labels): keeps the set with the best boundary F1 on
labelled minutes (theta_on x alpha x down_steps) and reports F1@2s/F1@5s on held-out minutes.
Any of ratio_off, up_steps, down_steps and alpha can be swept too (the lists below, or
--full-grid); the defaults were chosen on validation data (see calibration.unsupervised).

With a tokenizer model, the within-activity split step (which cuts an ON segment where the
motion changes character without a pause) is calibrated too: unsupervised, its threshold is
Otsu's split of the log change-score peaks inside activity; with --labels, the split window and
threshold with the best boundary F1 on the labelled minutes (`--no-split` turns the step off).

Writes OUT/calibration.json (thresholds + provenance; `laps-edge run --calibration` and a model
directory read it) and OUT/report.html with its plots in OUT/plots/. Warns when the proxy
separates activity from rest poorly (Youden's J below the documented level) or its
pseudo-labels are degenerate (almost all rest or all activity).
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from edge.cli_common import add_pipeline_options

    p = sub.add_parser(
        "run",
        help="calibrate hysteresis thresholds from video or recorded energy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Examples:\n"
            "  laps-calibrate run recordings/ --model models/site-a --out cal/site-a\n"
            "  laps-calibrate run out/run1/energy.npz --model none --out cal/velocity\n"
            "  laps-calibrate run videos/ --labels labels/ --model models/site-a --out cal/labelled\n"
            "  laps-calibrate run 'synthetic://assembly?seed=500&minutes=2' --model none --out cal/demo\n\n"
            "Label files (labelled mode) are named after the videos: NAME.json with "
            "{\"segments\": [[start_s, end_s], ...]} or the ground truth of `laps-edge synth`, or "
            "per-frame labels NAME.npy/.txt/.csv (one label per video frame; 0/rest/background = no action)."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR",
                   help="video files, folders of videos and/or energy.npz traces from `laps-edge run "
                        "--record-energy`, or synthetic:// specs")
    p.add_argument("--out", required=True, help="output folder for calibration.json, report.html and plots/")
    add_pipeline_options(p, "model directory whose thresholds are calibrated; 'default' = the shipped model; "
                            "'none' = velocity energy without a tokenizer")
    p.add_argument("--labels", action="append", default=[], metavar="PATH",
                   help="label file or folder of label files, named after the videos; switches to labelled "
                        "mode (repeatable)")
    p.add_argument("--holdout", type=float, default=0.3,
                   help="labelled mode: fraction at the end of every labelled recording held out of the "
                        "calibration and used to report F1@2s/F1@5s (default: %(default)s)")
    p.add_argument("--tau", type=float, default=2.0,
                   help="labelled mode: boundary tolerance in seconds of the F1 that is maximised "
                        "(default: %(default)s)")
    p.add_argument("--criterion", choices=("gmean", "youden", "f1"),
                   help="unsupervised mode: frame-wise score against the pseudo-labels to maximise: the "
                        "geometric mean of F1 and Youden's J, J, or F1 (default: gmean for a tokenizer, youden "
                        "for velocity energy)")
    p.add_argument("--ratio-off",
                   help="comma list of theta_off/theta_on ratios r to sweep (default: 0.95; --full-grid: "
                        "0.8,0.9,0.95)")
    p.add_argument("--up-steps",
                   help="comma list of ON-debounce step counts u to sweep (default: 2; --full-grid: 1,2,3)")
    p.add_argument("--down-steps",
                   help="comma list of OFF-debounce step counts d to sweep (default: 2, labelled mode 1,2,4; "
                        "--full-grid: 1,2,4)")
    p.add_argument("--alpha",
                   help="comma list of EMA weights of the newest energy to sweep (default: 0.7, labelled mode "
                        "0.5,0.7,1.0; --full-grid: 0.3,0.5,0.7,1.0)")
    p.add_argument("--full-grid", action="store_true",
                   help="sweep the wide grid of r, u, d and alpha above (27,648 sets with 256 theta_on) instead "
                        "of the defaults chosen on validation data (theta_on alone; labelled mode theta_on x "
                        "alpha x d); the lists given above still replace single parameters")
    p.add_argument("--max-theta", type=int, default=256,
                   help="most theta_on candidates (distinct energies and midpoints, thinned by rank) "
                        "(default: %(default)s)")
    p.add_argument("--cooldown-steps", type=int, default=1,
                   help="fixed steps after a segment ends before a new one may start (default: %(default)s)")
    p.add_argument("--min-steps", type=int, default=3,
                   help="fixed shortest kept segment in steps (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=0,
                   help="fixed cap on a segment's length in steps, 0 = none (default: %(default)s)")
    p.add_argument("--no-split", action="store_true",
                   help="leave the within-activity split step off (the paper's energy + hysteresis only)")
    p.add_argument("--split-window-s", type=float, default=None, metavar="S",
                   help="unsupervised mode: split window in seconds (default: 0.8; labelled mode searches "
                        "0.4-1.0 s, within the 2 s decision-lag budget, and also tries activity everywhere)")
    p.add_argument("--threads", type=int, help="CPU threads for the parameter sweep (default: all cores)")
    p.add_argument("--into-model", action="store_true",
                   help="also install calibration.json into the --model directory (updates its manifest)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from calibration.comparison import activity_mismatch_warning, compare_thresholds, current_params
    from calibration.labelled import LABELLED_SPACE, calibrate_labelled, match_labels
    from calibration.recordings import data_hash, find_inputs, load_recordings, resolve_model
    from calibration.report import write_report
    from calibration.split import DEFAULT_WINDOW_S, calibrate_split_unsupervised, recording_latents
    from calibration.sweep import SweepSpace
    from calibration.unsupervised import DEFAULT_SPACE, calibrate_unsupervised
    from edge.errors import ConfigError
    from edge.model import CALIBRATION_NAME, install_calibration

    space = _space(args, SweepSpace() if args.full_grid else DEFAULT_SPACE)
    labelled_space = _space(args, SweepSpace() if args.full_grid else LABELLED_SPACE)
    if args.threads is not None:
        import numba

        if not 1 <= args.threads <= numba.config.NUMBA_NUM_THREADS:
            raise ConfigError(f"--threads {args.threads} is not allowed; give 1..{numba.config.NUMBA_NUM_THREADS}")
        numba.set_num_threads(args.threads)
    model = resolve_model(args.model)
    if args.into_model and model.model_dir is None:
        raise ConfigError("--into-model needs a model directory; pass --model DIR (not 'none')")
    progress = not args.quiet
    inputs = find_inputs(args.inputs)
    recordings = load_recordings(inputs, model, tracker=args.tracker, providers=args.providers,
                                 energy_mode=args.energy_mode, progress=progress)
    cal = calibrate_unsupervised(recordings, space, criterion=args.criterion, progress=progress)
    latents = None
    if model.uses_tokenizer and not args.no_split:
        if args.energy_mode != "newest":
            cal.warnings.append(f"the split step needs the newest-token energy; with --energy-mode {args.energy_mode} "
                                f"it stays off")
        else:
            latents = recording_latents(recordings, model.model_dir)
            if latents is None:
                cal.warnings.append("some energy traces carry no FSQ codes (recorded by an older laps-edge), so the "
                                    "split step stays off; record them again with `laps-edge run --record-energy`")
    if args.split_window_s is not None and not 0.0 < args.split_window_s <= 5.0:
        raise ConfigError(f"--split-window-s {args.split_window_s:g} is out of range; give seconds in (0, 5], "
                          f"e.g. 0.8")
    if latents is not None:
        from dataclasses import replace

        split = calibrate_split_unsupervised(latents, cal.params, model.fps,
                                             window_s=args.split_window_s or DEFAULT_WINDOW_S)
        cal = replace(cal, params=split.params, split=split, warnings=cal.warnings + split.warnings)
    labels = {}
    extra = None
    if args.labels:
        labels = match_labels(args.labels, recordings)
        cal = calibrate_labelled(recordings, labels, cal, labelled_space, holdout_fraction=args.holdout,
                                 tau=args.tau, progress=progress, latents=latents)
        extra = {name: lab.segments.tolist() for name, lab in sorted(labels.items())}
    # The same recordings through the thresholds the devices run today and through the new ones.
    candidates = {"new": cal.params}
    current = current_params(model)
    if current is not None:
        candidates = {"current": current[0], "new": cal.params}
    comparison = compare_thresholds(recordings, cal.pseudo, candidates, labels, latents)
    mismatch = activity_mismatch_warning(comparison[-1].on_fraction, cal.quality.active_fraction)
    if mismatch:
        cal.warnings.append(mismatch)
    cal_file = cal.to_file(recordings, model, data_hash(recordings, extra))
    out = Path(args.out)
    cal_path = cal_file.write(out / CALIBRATION_NAME)
    report = write_report(out, cal, recordings, labels, cal_file.to_dict(), comparison=comparison,
                          current_source=current[1] if current is not None else "", model_dir=model.model_dir)
    installed = install_calibration(model.model_dir, cal_file) if args.into_model else None
    _print_summary(cal, recordings, model, cal_path, report, installed, comparison)
    return 0


def _print_summary(cal, recordings, model, cal_path, report, installed, comparison=()) -> None:
    p, q = cal.params, cal.quality
    seconds = sum(r.duration_s for r in recordings)
    sets = f"{cal.grid.size:,} parameter sets against the pseudo-labels"
    if cal.labelled is not None:
        sets += f", {cal.labelled.parameter_sets:,} against the labels"
    lines = [
        f"calibrated {model.model_version!r} on {len(recordings)} recording(s), {seconds / 60:.1f} min at "
        f"{model.fps:g} fps; swept {sets}",
        f"mode {cal.mode}: best {cal.criterion} = {cal.score:.3f} -> theta_on {p.theta_on:.4g}, theta_off "
        f"{p.theta_off:.4g} (r {p.ratio_off:g}), u {p.up_steps}, d {p.down_steps}, alpha {p.alpha:g}",
        f"proxy quality: Youden's J {q.youden_j:.2f}, F1 {q.f1:.2f} against the Otsu pseudo-labels "
        f"(threshold {q.otsu_threshold:.3g} px/step, separability {q.separability:.2f})",
    ]
    if cal.split is not None:
        sp = cal.split
        if sp.params.splits:
            how = (f"Otsu on {sp.peaks.size} log change-score peaks (separability {sp.separability:.2f})"
                   if sp.mode == "unsupervised" else f"boundary F1@{args_tau(cal)}s {sp.score:.3f} on the labels")
            lines.append(f"split step: window {p.split_window} steps, threshold {p.split_theta:.4g}, pieces >= "
                         f"{p.split_min_steps} steps ({how})")
        else:
            lines.append("split step: off (no candidate boundary inside activity, or it did not help on the labels)")
    if cal.labelled is not None and cal.labelled.heldout:
        lab, unsup = cal.labelled.heldout["labelled"], cal.labelled.heldout["unsupervised"]
        lines.append(
            f"held-out labelled minutes ({cal.labelled.heldout_s:.0f} s): F1@2s {lab['f1_at_2s']:.3f}, F1@5s "
            f"{lab['f1_at_5s']:.3f} (unsupervised thresholds: {unsup['f1_at_2s']:.3f} / {unsup['f1_at_5s']:.3f})"
        )
    for fig in comparison:
        truth = f", F1@2s {fig.f1_at_2s:.3f} against {fig.truth}" if fig.f1_at_2s is not None else ""
        lines.append(f"{fig.name + ' thresholds:':20s}theta_on {fig.params.theta_on:.4g}: {100 * fig.on_fraction:.1f} % of "
                     f"steps active (pseudo-labels {100 * cal.quality.active_fraction:.1f} %), {fig.segments} segments"
                     f"{truth}")
    lines.append(f"calibration: {cal_path}")
    lines.append(f"report:      {report}")
    if installed is not None:
        lines.append(f"installed:   {installed}")
    print("\n".join(lines))
    for w in cal.warnings:
        print(f"warning: {w}", file=sys.stderr)


def args_tau(cal) -> str:
    """The tau of a labelled calibration, for messages."""
    return f"{cal.labelled.tau:g}" if cal.labelled is not None else "2"


def _space(args: argparse.Namespace, defaults):
    """`defaults` (a SweepSpace) with every sweep option the user gave replacing its value."""
    from dataclasses import replace

    given = {}
    if args.ratio_off is not None:
        given["ratio_off"] = _floats(args.ratio_off, "--ratio-off")
    if args.up_steps is not None:
        given["up_steps"] = _ints(args.up_steps, "--up-steps")
    if args.down_steps is not None:
        given["down_steps"] = _ints(args.down_steps, "--down-steps")
    if args.alpha is not None:
        given["alpha"] = _floats(args.alpha, "--alpha")
    return replace(defaults, cooldown_steps=args.cooldown_steps, min_steps=args.min_steps,
                   max_steps=args.max_steps, max_theta=args.max_theta, **given)


def _floats(text: str, option: str) -> tuple[float, ...]:
    return tuple(_parse_list(text, option, float))


def _ints(text: str, option: str) -> tuple[int, ...]:
    return tuple(_parse_list(text, option, int))


def _parse_list(text: str, option: str, kind):
    from edge.errors import ConfigError

    try:
        values = [kind(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a comma list of {kind.__name__}s; write e.g. "
                          f"{'0.8,0.9' if kind is float else '1,2,3'}") from None
    if not values:
        raise ConfigError(f"{option} is empty; give at least one value")
    return values
