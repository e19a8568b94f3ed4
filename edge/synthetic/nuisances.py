"""Nuisance switches of the synthetic workstation and the camera-side effects they control.

`Nuisances` is the set of switches (all on in the benchmark set). `CameraEffects` holds the
per-frame signals of the camera-side nuisances, drawn once per seed so a frame's nuisances are
a pure function of (seed, frame index):

- shake: sub-pixel global translation of the image (micro-vibration plus rare bench bumps);
  it moves every point of the image and is part of the exact trajectories;
- flicker: per-frame gain at the alias of the mains lighting frequency plus jitter;
- drift: slow global brightness and colour-temperature drift (periods of 15-90 s);
- noise: additive Gaussian sensor noise from a bank of pre-drawn tiles at random offsets;
- compression: a JPEG round trip of every frame at low quality, i.e. what an MJPEG camera
  delivers (blocking, ringing, chroma subsampling). MP4 files are compressed again by their codec.

Motion blur and the distractor are applied by the renderer and the scene; their switches live here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from edge.errors import ConfigError

#: The switch names, in the order `Nuisances` declares them.
NUISANCE_NAMES = ("noise", "flicker", "drift", "shake", "blur", "compression", "distractor")


@dataclass(frozen=True)
class Nuisances:
    """Which nuisances the synthetic workstation renders; every one is on by default."""

    noise: bool = True
    flicker: bool = True
    drift: bool = True
    shake: bool = True
    blur: bool = True
    compression: bool = True
    distractor: bool = True

    @classmethod
    def all_on(cls) -> "Nuisances":
        """Every nuisance on (the benchmark set)."""
        return cls()

    @classmethod
    def none(cls) -> "Nuisances":
        """Every nuisance off: a clean render, static during rests."""
        return cls(**{name: False for name in NUISANCE_NAMES})

    @classmethod
    def parse(cls, text: str) -> "Nuisances":
        """Parse "all", "none" or a comma-separated list of switch names to turn on.

        Raises ConfigError (one line) for an unknown name.
        """
        value = str(text).strip().lower()
        if value == "all":
            return cls.all_on()
        if value in ("none", ""):
            return cls.none()
        names = [n.strip() for n in value.split(",") if n.strip()]
        for name in names:
            if name not in NUISANCE_NAMES:
                raise ConfigError(
                    f"unknown nuisance {name!r} in {text!r}; use 'all', 'none' or a comma-separated "
                    f"list of {', '.join(NUISANCE_NAMES)}"
                )
        return cls(**{name: name in names for name in NUISANCE_NAMES})

    def enabled(self) -> list[str]:
        """Names of the switches that are on."""
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def spec(self) -> str:
        """The text `parse` turns back into these switches ("all", "none" or a list)."""
        on = self.enabled()
        if len(on) == len(NUISANCE_NAMES):
            return "all"
        return ",".join(on) if on else "none"

    def __str__(self) -> str:
        return self.spec()


class CameraEffects:
    """Per-frame camera-side nuisance signals for one seed, and their application to a frame.

    Signals are drawn for every frame at construction, so `shake_xy(i)` and `apply(frame, i)`
    give the same result whatever order frames are asked for in.
    """

    #: tiles in the sensor-noise bank and their border (pixels) for random offsets
    _NOISE_TILES = 4
    _NOISE_PAD = 32

    def __init__(self, rng: np.random.Generator, n_frames: int, fps: float, size: tuple[int, int],
                 nuisances: Nuisances) -> None:
        self.nuisances = nuisances
        self.size = size
        width, height = size
        unit = height / 480.0
        t = np.arange(n_frames) / fps
        # Draw every signal whether or not it is switched on, so one switch never changes another's values.
        shake = _shake_signal(rng, t, fps, unit)
        gains = _illumination_gains(rng, t, fps, nuisances.flicker, nuisances.drift)
        noise_sigma = rng.uniform(2.0, 4.0)
        self.jpeg_quality = int(rng.integers(30, 56))
        self._noise_pick = np.stack([
            rng.integers(0, self._NOISE_TILES, n_frames),
            rng.integers(0, self._NOISE_PAD + 1, n_frames),
            rng.integers(0, self._NOISE_PAD + 1, n_frames),
        ], axis=1)
        noise_rng = np.random.default_rng(rng.integers(0, 2**63))
        self.shake = shake if nuisances.shake else np.zeros_like(shake)
        self.gains = gains
        self._use_gain = nuisances.flicker or nuisances.drift
        self._noise_pos: list[np.ndarray] = []
        self._noise_neg: list[np.ndarray] = []
        if nuisances.noise:
            for _ in range(self._NOISE_TILES):
                tile = noise_rng.normal(0.0, noise_sigma, (height + self._NOISE_PAD, width + self._NOISE_PAD, 3))
                tile = np.rint(tile).astype(np.int16)
                # Signed noise is added as two saturating uint8 passes (add the positive part,
                # subtract the negative part): far cheaper than a round trip through int16.
                self._noise_pos.append(np.clip(tile, 0, 255).astype(np.uint8))
                self._noise_neg.append(np.clip(-tile, 0, 255).astype(np.uint8))
        self.noise_sigma = float(noise_sigma)

    def shake_xy(self, i: int) -> tuple[float, float]:
        """Global image translation (dx, dy) in pixels at frame i (zero when shake is off)."""
        return float(self.shake[i, 0]), float(self.shake[i, 1])

    def apply(self, frame: np.ndarray, i: int) -> np.ndarray:
        """Apply illumination, sensor noise and compression to a BGR uint8 frame (may be in place)."""
        height, width = frame.shape[:2]
        if self._use_gain:
            # A diagonal colour transform: per-channel gain with saturation, one cheap pass.
            cv2.transform(frame, np.diag(self.gains[i]).astype(np.float32), dst=frame)
        if self._noise_pos:
            k, ox, oy = (int(v) for v in self._noise_pick[i])
            cv2.add(frame, self._noise_pos[k][oy:oy + height, ox:ox + width], dst=frame)
            cv2.subtract(frame, self._noise_neg[k][oy:oy + height, ox:ox + width], dst=frame)
        if self.nuisances.compression:
            ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if ok:
                frame = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return frame


def _shake_signal(rng: np.random.Generator, t: np.ndarray, fps: float, unit: float) -> np.ndarray:
    """(n, 2) pixel offsets: a few 4-12 Hz vibrations, smoothed jitter, and decaying bench bumps."""
    n = len(t)
    out = np.zeros((n, 2), np.float64)
    for axis in range(2):
        for _ in range(3):
            freq = rng.uniform(4.0, 12.0)
            amp = rng.uniform(0.1, 0.35) * unit
            out[:, axis] += amp * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi))
    jitter = rng.normal(0.0, 0.25 * unit, (n, 2))
    kernel = np.array([0.25, 0.5, 0.25])
    for axis in range(2):
        out[:, axis] += np.convolve(np.pad(jitter[:, axis], 1, mode="edge"), kernel, mode="valid")
    # Someone bumps the bench every ~20 s: a decaying 6 Hz oscillation of 1.5-3 px.
    duration = n / fps
    n_bumps = rng.poisson(duration / 20.0)
    for _ in range(n_bumps):
        t0 = rng.uniform(0, duration)
        amp = rng.uniform(1.5, 3.0) * unit
        direction = rng.uniform(0, 2 * np.pi)
        dt = t - t0
        env = np.where(dt >= 0, np.exp(-np.clip(dt, 0, None) / 0.3), 0.0) * np.sin(2 * np.pi * 6.0 * dt)
        out[:, 0] += amp * np.cos(direction) * env
        out[:, 1] += amp * np.sin(direction) * env
    return np.clip(out, -4.0 * unit, 4.0 * unit)


def _illumination_gains(rng: np.random.Generator, t: np.ndarray, fps: float, flicker: bool,
                        drift: bool) -> np.ndarray:
    """(n, 3) per-channel (B, G, R) gains: mains flicker aliased to fps, and slow drift."""
    n = len(t)
    # Lamps flicker at twice the mains frequency; a camera at `fps` sees its alias.
    lamp = 2.0 * float(rng.choice([50.0, 60.0]))
    alias = abs(lamp - fps * round(lamp / fps))
    amp = rng.uniform(0.01, 0.03)
    flick = amp * np.sin(2 * np.pi * alias * t + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 0.004, n)
    level = np.zeros(n)
    for _ in range(3):
        level += rng.uniform(0.01, 0.03) * np.sin(2 * np.pi * t / rng.uniform(15.0, 90.0) + rng.uniform(0, 2 * np.pi))
    warmth = rng.uniform(0.01, 0.03) * np.sin(2 * np.pi * t / rng.uniform(30.0, 120.0) + rng.uniform(0, 2 * np.pi))
    gains = np.ones((n, 3), np.float64)
    if flicker:
        gains *= (1.0 + flick)[:, None]
    if drift:
        gains *= (1.0 + level)[:, None]
        gains[:, 0] *= 1.0 - warmth  # blue down when the light warms
        gains[:, 2] *= 1.0 + warmth
    return gains
