"""Laptop side: offline threshold calibration over the device's own energy kernel.

Modules, by what they do (the method: docs/method.md#calibration):
- `recordings`: energy traces to calibrate on (video through the device pipeline, or
  `laps-edge run --record-energy` traces), checked against the model's conventions;
- `proxy`: the velocity-energy proxy and its Otsu pseudo-labels (256 bins);
- `sweep`: parameter grids and frame-wise scores on the shared kernel's parallel runner;
- `unsupervised`: thresholds from the pseudo-labels, with the proxy's quality and the warning;
- `labelled`: thresholds from labelled minutes, with held-out F1@2s/F1@5s;
- `calibration.json` itself is `edge.calibration_file.CalibrationFile` (`Calibration.to_file` builds it;
  `edge.model.install_calibration` puts it into a model directory);
- `report`: one HTML report with PNG plots.
The command line is `laps-calibrate` (`calibration.cli`).
"""
