"""LAPS Edge: latent action-based primitive segmentation of workstation video, on the device.

The `edge` package is the device runtime. It never imports torch, nor the laptop- and
fleet-side packages `export`, `calibration` and `central` (imports point one way).
"""

__version__ = "0.1.0"
