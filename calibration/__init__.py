"""Laptop side: offline threshold calibration over the device's own energy kernel."""
