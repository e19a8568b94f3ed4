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

Every back-half row runs at the device's step rate: features faster than DEVICE_FPS are taken
every k-th frame (HA4M's 30 fps -> 10 fps), since the kernel's step counts (up/down steps,
minimum lengths, split windows) are defined at the model's 10 fps; segments come back in seconds.

"+ split" rows add the kernel's within-activity split step on the same feature stream, its
parameters from `calibration.split` the same two ways: Otsu on the log change-score peaks of the
dataset's unlabelled features, or the labelled (window, threshold) search on the other videos.
The "split only" row sets activity everywhere (theta_on = 0: no rest in this data, actions back
to back) and cuts by the split step alone, its window half the median true segment length of
the OTHER videos (the same leave-one-out knowledge K and the period give the peers) and its
threshold by Otsu on the change-score peaks of the unlabelled features.
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
#: The device's step rate (the shipped model's fps): the kernel's step counts are defined at it.
DEVICE_FPS = 10.0


def at_device_rate(features: np.ndarray, fps: float) -> tuple[np.ndarray, float]:
    """(features every k-th frame, fps / k) with k = round(fps / DEVICE_FPS) (k = 1 at <= 10 fps)."""
    k = _frames_per_step(fps)
    return features[::k], float(fps) / k


def _frames_per_step(fps: float) -> int:
    return max(1, int(round(float(fps) / DEVICE_FPS)))


def _device_pool(pool_features, fps: float) -> tuple[list[np.ndarray], float]:
    """(every feature matrix at the device rate, that rate)."""
    return [at_device_rate(f, fps)[0] for f in pool_features], float(fps) / _frames_per_step(fps)


def feature_energy(features: np.ndarray) -> np.ndarray:
    """(T,) E_t = ||f_t - f_{t-1}||_2, E_0 = 0, exactly as the kernel computes it."""
    return run_series_latent(features, HysteresisParams(theta_on=0.0)).energy


def kernel_segments(features: np.ndarray, fps: float, params: HysteresisParams) -> np.ndarray:
    """(K, 2) [start, end) seconds of the kernel's kept segments on (T, D) features at `fps`
    (run at the device rate)."""
    f, rate = at_device_rate(features, fps)
    return run_series_latent(f, params).segments / rate


def unsupervised_params(pool_features, fps: float) -> HysteresisParams:
    """Thresholds from `calibrate_unsupervised` on the (unlabelled) features of a dataset, given
    at the device rate."""
    from calibration.unsupervised import DEFAULT_CRITERION_VELOCITY, calibrate_unsupervised

    return calibrate_unsupervised(_recordings(pool_features, fps), criterion=DEFAULT_CRITERION_VELOCITY).params


def labelled_params(context: Context, others: tuple[list[np.ndarray], float] | None = None) -> HysteresisParams:
    """Thresholds from `calibrate_labelled` on the context's other (labelled) videos; `others`:
    their features already at the device rate and that rate (`_device_pool`), when the caller has them."""
    from calibration.labelled import RecordingLabels, calibrate_labelled
    from calibration.unsupervised import DEFAULT_CRITERION_VELOCITY, calibrate_unsupervised

    features, rate = others or _device_pool([v.features for v in context.others], context.fps)
    recs = _recordings(features, rate, [v.name for v in context.others])
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

    pool, rate = _device_pool(pool_features, fps)
    return calibrate_split_unsupervised(pool, unsupervised_params(pool, rate), rate).params


def labelled_split_params(context: Context) -> HysteresisParams:
    """`labelled_params` plus the split step from `calibrate_split_labelled` on the other videos."""
    from calibration.split import calibrate_split_labelled

    others = _device_pool([v.features for v in context.others], context.fps)  # once, for both calibrations
    return calibrate_split_labelled(others[0], [v.segments() for v in context.others], others[1],
                                    labelled_params(context, others)).params


def split_only_params(context: Context) -> HysteresisParams:
    """Activity everywhere, split window half the others' median true length, Otsu threshold."""
    from calibration.split import calibrate_split_unsupervised, everywhere

    pool, rate = _device_pool(context.pool_features, context.fps)
    spans = np.concatenate([v.segments() for v in context.others])
    window_s = 0.5 * float(np.median(spans[:, 1] - spans[:, 0]))
    base = everywhere(HysteresisParams(theta_on=0.0))
    return calibrate_split_unsupervised(pool, base, rate, window_s=window_s).params


def back_half_unsupervised(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    """Segments of the kernel with thresholds calibrated without any label."""
    pool, rate = _device_pool(context.pool_features, fps)
    return kernel_segments(features, fps, unsupervised_params(pool, rate))


def back_half_labelled(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    """Segments of the kernel with thresholds calibrated on the other videos' labels."""
    return kernel_segments(features, fps, labelled_params(context))


def back_half_split_unsupervised(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    """Segments of the kernel with the split step, everything calibrated without labels."""
    return kernel_segments(features, fps, unsupervised_split_params(context.pool_features, fps))


def back_half_split_labelled(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    """Segments of the kernel with the split step, calibrated on the other videos' labels."""
    return kernel_segments(features, fps, labelled_split_params(context))


def back_half_split_only(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    """Segments of the split step alone (activity everywhere), window from the others' lengths."""
    return kernel_segments(features, fps, split_only_params(context))


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
