"""Decide, once per process, whether the energy kernel's Numba functions may use `cache=True`.

Numba (0.68) looks for a cache directory when a `cache=True` function is *decorated*, trying in
order: `NUMBA_CACHE_DIR` (if set), the `__pycache__` beside the source file, then the user-wide
cache (`$XDG_CACHE_HOME/numba` or `~/.cache/numba`). It silently skips a directory it cannot
write and raises `RuntimeError` at import time when none works (e.g. a read-only package on a
device whose service user has no writable home).

Our policy:
- `NUMBA_CACHE_DIR` set but not writable: one `KernelCacheWarning`, uncached compilation. We do
  not follow Numba's silent fallback into the package tree: whoever set the variable asked for
  the cache to live there (typically because the package directory is read-only or shared).
- `NUMBA_CACHE_DIR` unset: cache if the package `__pycache__` *or* the user-wide directory is
  writable (Numba then picks the first that works, exactly as probed here); if neither is, one
  `KernelCacheWarning` and uncached compilation.
Uncached only costs start-up time (the kernel compiles in a few seconds on every start).
"""

from __future__ import annotations

import functools
import os
import tempfile
import warnings
from pathlib import Path


class KernelCacheWarning(RuntimeWarning):
    """The Numba cache directory is not writable; the kernel compiles without a cache."""


@functools.lru_cache(maxsize=None)
def kernel_cache_enabled() -> bool:
    """True when the kernel's `@njit` functions can use `cache=True`; warns once when not."""
    from numba.core import config

    source_dir = Path(__file__).resolve().parent
    if config.CACHE_DIR:
        target = Path(config.CACHE_DIR)
        if _writable_dir(target):
            return True
        warnings.warn(
            f"NUMBA_CACHE_DIR={str(target)!r} is not writable; compiling the energy kernel "
            f"without a cache (slower start). Fix: point NUMBA_CACHE_DIR at a writable "
            f"directory or unset it.",
            KernelCacheWarning,
            stacklevel=2,
        )
        return False
    in_tree = source_dir / "__pycache__"
    user_wide = _user_wide_cache_dir()
    if _writable_dir(in_tree) or (user_wide is not None and _writable_dir(user_wide)):
        return True
    warnings.warn(
        f"neither {str(in_tree)!r} nor the user cache {str(user_wide)!r} is writable; compiling "
        f"the energy kernel without a cache (slower start). Fix: set NUMBA_CACHE_DIR to a "
        f"writable directory.",
        KernelCacheWarning,
        stacklevel=2,
    )
    return False


def _user_wide_cache_dir() -> Path | None:
    """The directory Numba's user-wide locator uses (its own AppDirs rule)."""
    try:
        from numba.misc.appdirs import AppDirs
    except ImportError:  # a Numba without the vendored appdirs: no user-wide fallback assumed
        return None
    return Path(AppDirs(appname="numba", appauthor=False).user_cache_dir)


def _writable_dir(path: Path) -> bool:
    """Create `path` if needed and write a temporary file in it, as Numba's locator does."""
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True
