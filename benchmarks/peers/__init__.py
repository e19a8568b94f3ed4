"""Segmenters compared on real labelled data (`benchmarks/real_segmentation.py`).

Every method is a plain function `(features (T, D) float32, fps, context) -> segments (K, 2)`
[start, end) seconds, listed in `registry.METHODS`. What a method may know about a video beyond
its features comes from `context.Context`, built leave-one-video-out: the other videos' labels,
never the scored video's.

Modules: `abd` (Du et al., CVPR 2022), `twfinch` (Sarfraz et al., CVPR 2021), `baselines`
(equal split, periodic), `back_half` (the device's energy kernel with the calibration package's
thresholds), `context`, `registry`, `inputs` (the shared input check).
"""
