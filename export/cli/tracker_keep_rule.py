"""`laps-export tracker-keep-rule`: choose the student tracker's keep rule on VALIDATION seeds."""

from __future__ import annotations

import argparse

EPILOG = """\
Runs the exported student once with no cut (recording every step's visibility logit, match
residual and motion) and Lucas-Kanade on the same synthetic VALIDATION recordings (seeds 500-599;
held-out 900-999 are refused), then scores every rule - logit cut, residual cut, and the residual
cut for points that moved more than the model's moving_px this step (0 = the same cut) - exactly
from that one run:
end-point error median and 16-frame survival overall and on the hard subsets (fast motion, low
texture, blur, flicker; export/tracker/evaluation.py, the same code as benchmarks/tracking.py).

A rule qualifies when on every subset its median is below LK's and its survival at least LK's;
the qualifying rule with the lowest fast-motion median is recommended, as the flags to give
`laps-export onnx`. Exit 0 with a recommendation, 1 when no rule qualifies.

Example (how the shipped rule, bundle version 9, was chosen; about 4 minutes on 2 cores):
  laps-export tracker-keep-rule --tracker-model edge/shipped_models/default --seeds 500-505 \\
      --plot keep-rule.png --json keep-rule.json
"""


def _floats(text: str, flag: str) -> list[float]:
    from edge.errors import ConfigError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not a comma-separated list of numbers; write e.g. -2,-3") from None
    if not values:
        raise ConfigError(f"{flag} is empty; write e.g. -2,-3")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    from export.tracker.keep_rule import DEFAULT_MOVING_RESIDUAL, DEFAULT_RESIDUAL, DEFAULT_VISIBILITY

    p = subparsers.add_parser(
        "tracker-keep-rule", help="choose the student tracker's visibility and residual cuts on validation seeds",
        description="Score a grid of keep rules (visibility-logit cut x match-residual cut x moving-point "
                    "residual cut) of an exported student tracker against Lucas-Kanade on synthetic VALIDATION "
                    "recordings, print the table and recommend the flags for `laps-export onnx`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tracker-model", required=True, help="tracker.onnx or a model directory holding one")
    p.add_argument("--seeds", default="500-505", metavar="LIST", help="VALIDATION seeds (default 500-505)")
    p.add_argument("--minutes", type=float, default=1.0, help="minutes per recording (default 1)")
    p.add_argument("--visibility", default=",".join(f"{v:g}" for v in DEFAULT_VISIBILITY), metavar="LIST",
                   help="logit cuts to try; a list that starts with '-' needs the '=': --visibility=-2,-3 "
                        f"(default {','.join(f'{v:g}' for v in DEFAULT_VISIBILITY)})")
    p.add_argument("--residual", default=",".join(f"{v:g}" for v in DEFAULT_RESIDUAL), metavar="LIST",
                   help="match-residual cuts to try, 0 = no residual check "
                        f"(default {','.join(f'{v:g}' for v in DEFAULT_RESIDUAL)})")
    p.add_argument("--moving-residual", default=",".join(f"{v:g}" for v in DEFAULT_MOVING_RESIDUAL), metavar="LIST",
                   help="residual cuts to try for points that moved more than the model's moving_px this step, "
                        "0 = the --residual cut for them too "
                        f"(default {','.join(f'{v:g}' for v in DEFAULT_MOVING_RESIDUAL)})")
    p.add_argument("--json", metavar="PATH", help="write every rule's figures here")
    p.add_argument("--plot", metavar="PNG", help="draw median vs survival per subset, LK and the choice marked")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edge.errors import ConfigError
    from edge.tracking.lk import LucasKanadeTracker
    from edge.tracking.onnx_student import OnnxStudentTracker
    from export.tokenizer.dataset import parse_seed_range
    from export.tracker.evaluation import GRID, SIZE, synthetic_runs
    from export.tracker.keep_rule import choose, evaluate_rules
    from export.tracker.teachers import check_training_seed

    seeds = parse_seed_range(args.seeds)
    for s in seeds:
        check_training_seed(s, "validation")
    if not args.minutes > 0:
        raise ConfigError(f"--minutes {args.minutes:g} must be > 0; e.g. 1")
    visibility = _floats(args.visibility, "--visibility")
    residual = _floats(args.residual, "--residual")
    moving = _floats(args.moving_residual, "--moving-residual")
    for flag, text, values in (("--residual", args.residual, residual),
                               ("--moving-residual", args.moving_residual, moving)):
        if any(not r >= 0 for r in values):
            raise ConfigError(f"{flag} {text!r} has a negative cut; residual cuts are >= 0 (0 = no check, or for "
                              "--moving-residual the --residual cut)")
    for path in (args.json, args.plot):
        if path and not Path(path).resolve().parent.is_dir():
            raise ConfigError(f"folder of {path} does not exist; create it or write elsewhere")
    # No cut at all: every step's figures are recorded and each rule is applied afterwards.
    student = OnnxStudentTracker(args.tracker_model, grid=GRID, providers="cpu", visibility_threshold=float("-inf"),
                                 residual_threshold=0.0, moving_residual_threshold=0.0)
    if not student.has_residual:
        raise ConfigError(f"tracker {student.path} has no match-residual output; re-export it with "
                          "`laps-export onnx` (a sub-pixel stage) to choose a residual cut")
    if tuple(student.input_size) != SIZE:  # (the grid was checked when the tracker was opened)
        raise ConfigError(f"tracker {student.path} takes {student.input_size[0]}x{student.input_size[1]} frames; the "
                          f"evaluation is defined at {SIZE[0]}x{SIZE[1]} (export the tracker for the default model)")
    meta = student.metadata
    shipped = (meta.visibility_threshold, meta.residual_threshold, meta.moving_residual_threshold)
    trackers = {"lk": LucasKanadeTracker(grid=GRID), "student": student}
    merged = synthetic_runs(trackers, seeds, args.minutes, desc="validation runs", progress=not args.no_progress)
    results = evaluate_rules(merged, visibility, residual, moving, student.moving_px)
    best = choose(results)
    _print(results, best, shipped, student.moving_px)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "tracker": str(student.path), "model_version": student.metadata.model_version, "seeds": seeds,
            "minutes": args.minutes, "moving_px": student.moving_px,
            "lk": {label: {"epe_median_px": m, "survival_16": s} for label, (m, s) in results[0].lk.items()},
            "rules": [r.to_dict() for r in results], "shipped": list(shipped),
            "chosen": None if best is None else list(best.cuts)}, indent=1))
        print(f"figures: {args.json}")
    if args.plot:
        _plot(results, best, shipped, Path(args.plot))
        print(f"plot: {args.plot}")
    if best is None:
        print("no rule qualifies (median below LK's and survival at least LK's on every subset); widen the grid "
              "or improve the tracker")
        return 1
    print(f"recommended: laps-export onnx ... --visibility-threshold {best.visibility_threshold:g} "
          f"--residual-threshold {best.residual_threshold:g} "
          f"--moving-residual-threshold {best.moving_residual_threshold:g}")
    return 0


def _short(label: str) -> str:
    return label.split(" (")[0]


def _print(results, best, shipped, moving_px: float) -> None:
    labels = list(results[0].figures)
    head = f"{'logit >=':>9} {'resid <':>8} {'moving <':>8}  " + "  ".join(f"{_short(lb):>15}" for lb in labels)
    print(f"median px / survival 16; * = not better than LK there; moving: the residual cut for points that "
          f"moved > {moving_px:g} px this step (0 = resid)")
    print(head)
    print(f"{'LK':>27}  " + "  ".join(f"{m:7.3f}/{s:5.3f}  " for m, s in results[0].lk.values()))
    for r in results:
        cells = "  ".join(f"{m:7.3f}/{s:5.3f}{' ' if r.cell_ok(lb) else '*'} " for lb, (m, s) in r.figures.items())
        tag = " <- chosen" if r is best else ""
        if r.cuts == shipped:
            tag += " (the model's own)"
        print(f"{r.visibility_threshold:>9g} {r.residual_threshold:>8g} {r.moving_residual_threshold:>8g}  "
              f"{cells}{tag}")


def _plot(results, best, shipped, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results[0].figures)
    fig, axes = plt.subplots(1, len(labels), figsize=(4 * len(labels) + 2.5, 3.8), layout="constrained")
    # One line per (logit cut, moving cut) along the residual cuts, coloured by the logit cut and
    # styled by the moving cut: that grid is at most a few dozen lines.
    cuts = sorted({r.visibility_threshold for r in results})
    movings = sorted({r.moving_residual_threshold for r in results})
    cmap = plt.get_cmap("viridis", max(2, len(cuts)))
    styles = ("o-", "s--", "^:", "d-.", "v-", "P--")
    for ax, label in zip(axes, labels):
        for k, v in enumerate(cuts):
            for j, mr in enumerate(movings):
                rs = [r for r in results if r.visibility_threshold == v and r.moving_residual_threshold == mr]
                name = f"logit >= {v:g}, moving < {mr:g}" if mr > 0 else f"logit >= {v:g}, moving: same cut"
                ax.plot([r.figures[label][1] for r in rs], [r.figures[label][0] for r in rs], styles[j % len(styles)],
                        ms=3, lw=0.8, color=cmap(k), label=name)
        lm, ls = results[0].lk[label]
        ax.plot([ls], [lm], "r*", ms=12, label="Lucas-Kanade")
        ax.axhline(lm, color="r", lw=0.5, ls=":")
        ax.axvline(ls, color="r", lw=0.5, ls=":")
        for r, style in ((best, "ks"), (next((r for r in results if r.cuts == shipped), None), "kx")):
            if r is not None:
                ax.plot([r.figures[label][1]], [r.figures[label][0]], style, ms=10, mfc="none")
        ax.set_title(_short(label))
        ax.set_xlabel("survival over 16 frames")
        ax.set_ylabel("end-point error median (px)")
    # Beside the panels, not over one: the grid can hold a few dozen lines.
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right upper", fontsize=6, ncols=1 + len(names) // 24,
               title="residual cut along each line;\n[] chosen, x the model's own", title_fontsize=7)
    fig.suptitle("Keep rules vs Lucas-Kanade (red star): a rule beats LK on a subset when it lies below and "
                 "right of the star (smaller error, more points held)", fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
