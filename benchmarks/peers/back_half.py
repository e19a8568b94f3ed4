"""The project's back half on real features: the device's energy kernel with calibrated thresholds.

Energy: E_t = ||f_t - f_{t-1}||_2 of consecutive feature vectors, computed and segmented by the
device's own kernel (`edge.energy.run_series_latent`: the jitted loop over `latent_step`, EMA +
hysteresis; `segments_from_features` runs the same step per frame). Thresholds come from the
calibration package, as a user would get them:

- unsupervised: `calibration.unsupervised.calibrate_unsupervised` over every video of the
  dataset (no labels; one camera view, one calibration). The proxy whose Otsu split gives the
  pseudo-labels is the energy itself: features have no tracks to compute a velocity proxy from,
  so this is the library's velocity-energy case and its documented criterion for it (Youden's J,
  `DEFAULT_CRITERION_VELOCITY`) is used;
- labelled minutes, leave one video out: `calibration.labelled.calibrate_labelled` on the OTHER
  videos of the dataset and their labels (the library's default labelled search: theta_on x
  alpha x down_steps, best boundary F1@2s), nothing held out; then applied to the scored video.

"+ split" rows add the kernel's within-activity split step on the same feature stream, its
parameters from `calibration.split` the same two ways: Otsu on the log change-score peaks of the
dataset's unlabelled features, or the labelled (window, threshold) search on the other videos.
"""

from __future__ import annotations

import numpy as np

from benchmarks.peers.context import Context
from edge.energy import HysteresisParams, run_series_latent

# The calibration package is imported where it is used: importing it with this module would put
# the real `calibration` into sys.modules while pytest collects, before it imports the test
# package tests/calibration under that same name.

#: Model version stamped on the energy traces of real features (not a tokenizer's).
FEATURE_ENERGY_VERSION = "real-feature-energy"


def feature_energy(features: np.ndarray) -> np.ndarray:
    """(T,) E_t = ||f_t - f_{t-1}||_2, E_0 = 0, exactly as the kernel computes it."""
    return run_series_latent(features, HysteresisParams(theta_on=0.0)).energy


def kernel_segments(features: np.ndarray, fps: float, params: HysteresisParams) -> np.ndarray:
    """(K, 2) [start, end) seconds of the kernel's kept segments on (T, D) features."""
    return run_series_latent(features, params).segments / float(fps)


def unsupervised_params(pool_features, fps: float) -> HysteresisParams:
    """Thresholds from `calibrate_unsupervised` on the (unlabelled) features of a dataset."""
    from calibration.unsupervised import DEFAULT_CRITERION_VELOCITY, calibrate_unsupervised

    return calibrate_unsupervised(_recordings(pool_features, fps), criterion=DEFAULT_CRITERION_VELOCITY).params


def labelled_params(context: Context) -> HysteresisParams:
    """Thresholds from `calibrate_labelled` on the context's other (labelled) videos."""
    from calibration.labelled import RecordingLabels, calibrate_labelled
    from calibration.unsupervised import DEFAULT_CRITERION_VELOCITY, calibrate_unsupervised

    recs = _recordings([v.features for v in context.others], context.fps, [v.name for v in context.others])
    labels = {
        r.name: RecordingLabels(name=r.name, path=f"leave-one-out:{r.name}", segments=v.segments(),
                                duration_s=v.duration_s)
        for r, v in zip(recs, context.others)
    }
    unsup = calibrate_unsupervised(recs, criterion=DEFAULT_CRITERION_VELOCITY)
    return calibrate_labelled(recs, labels, unsup, holdout_fraction=0.0).params


def unsupervised_split_params(pool_features, fps: float) -> HysteresisParams:
    """`unsupervised_params` plus the split step from `calibrate_split_unsupervised`."""
    from calibration.split import calibrate_split_unsupervised

    return calibrate_split_unsupervised(list(pool_features), unsupervised_params(pool_features, fps), fps).params


def labelled_split_params(context: Context) -> HysteresisParams:
    """`labelled_params` plus the split step from `calibrate_split_labelled` on the other videos."""
    from calibration.split import calibrate_split_labelled

    return calibrate_split_labelled([v.features for v in context.others], [v.segments() for v in context.others],
                                    context.fps, labelled_params(context)).params


def back_half_unsupervised(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    """Segments of the kernel with thresholds calibrated without any label."""
    return kernel_segments(features, fps, unsupervised_params(context.pool_features, fps))


def back_half_labelled(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    """Segments of the kernel with thresholds calibrated on the other videos' labels."""
    return kernel_segments(features, fps, labelled_params(context))


def back_half_split_unsupervised(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    """Segments of the kernel with the split step, everything calibrated without labels."""
    return kernel_segments(features, fps, unsupervised_split_params(context.pool_features, fps))


def back_half_split_labelled(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    """Segments of the kernel with the split step, calibrated on the other videos' labels."""
    return kernel_segments(features, fps, labelled_split_params(context))


def _recordings(features, fps: float, names=None) -> list:
    """One `calibration.recordings.EnergyRecording` per feature matrix, the energy as its own proxy."""
    from calibration.recordings import EnergyRecording

    names = names or [f"video{i:03d}" for i in range(len(features))]
    out = []
    for name, f in zip(names, features):
        e = feature_energy(f)
        out.append(EnergyRecording(name=name, source="real-features", energy=e, proxy=e, fps=float(fps),
                                   model_version=FEATURE_ENERGY_VERSION, kind="trace"))
    return out
