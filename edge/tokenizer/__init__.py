"""The motion tokenizer on the device: FSQ in float32 NumPy and the per-frame runtime.

    from edge.tokenizer import TokenizerRuntime, FSQ
"""

from edge.tokenizer.fsq import FSQ, fsq_constants, window_mean_energy
from edge.tokenizer.runtime import ENERGY_MODES, INPUT_NAME, OUTPUT_NAME, TokenizerRuntime, TokenStep

__all__ = [
    "ENERGY_MODES", "FSQ", "INPUT_NAME", "OUTPUT_NAME", "TokenStep", "TokenizerRuntime", "fsq_constants",
    "window_mean_energy",
]
