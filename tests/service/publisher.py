"""The device service without a pipeline, fed by a synthetic segment generator: a test harness.

`python -m tests.service.publisher --config FILE --synthetic-segments N` runs the real
`edge.device_runtime.DeviceRuntime` (outbox, MQTT link, upload) in a real process that the
reliability tests and the benchmarks can SIGKILL; it prints `committed <segment_id>` once each
segment is durable in the outbox. Run it from the repository root.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

from edge.config import EdgeConfig, load_config
from edge.device_runtime import DeviceRuntime
from edge.errors import LapsError
from edge.segments import Segment, utc_iso, uuid7


def synthetic_segments(count: int, fps: float = 10.0, steps: int = 20, seed: int = 0) -> Iterator[Segment]:
    """`count` plausible segments with fresh UUIDv7 ids (count < 0: endless), for transport tests.

    Each spans `steps` frames starting where the previous one ended plus a gap of 5 frames;
    codes are deterministic in `seed`; times are wall-clock UTC from now.
    """
    import random

    rng = random.Random(seed)
    origin = datetime.now(timezone.utc)
    frame = 0
    i = 0
    while count < 0 or i < count:
        start, end = frame, frame + steps
        seg = Segment(
            segment_id=str(uuid7()), start_frame=start, end_frame=end, start_s=start / fps, end_s=end / fps,
            fps=fps, start_utc=utc_iso(origin, start / fps), end_utc=utc_iso(origin, end / fps),
            codes=[rng.randrange(1920) for _ in range(steps)], energy_mean=rng.random(),
            energy_max=1.0 + rng.random(), keyframes=[start + steps // 2], model_version="synthetic",
        )
        yield seg
        frame = end + 5
        i += 1


def run_publisher(
    config: EdgeConfig,
    segments: Iterable[Segment],
    interval_s: float = 0.0,
    keyframe_bytes: Callable[[Segment], dict[int, bytes]] | None = None,
    on_committed: Callable[[Segment], None] | None = None,
    until_drained_s: float = 0.0,
) -> int:
    """The service without a pipeline: emit `segments` every `interval_s` through the real
    outbox/MQTT/upload path, then stop cleanly (or on SIGTERM). `on_committed(segment)` runs
    after each segment is durable in the outbox. until_drained_s: after the last segment, wait
    up to this long for the outbox to empty (and the upload spool to be delivered) first."""
    rt = DeviceRuntime(config)
    try:
        rt.start(model_version="synthetic", providers=[])
        rt.notifier.ready("publishing synthetic segments")
        rt.set_source_state("online", "synthetic segment generator")
        for seg in segments:
            if rt.stop_event.is_set():
                break
            dropped = rt.disk.counters["dropped_segments"]
            rt.emit(seg, keyframe_bytes(seg) if keyframe_bytes else None)
            if on_committed is not None and rt.disk.counters["dropped_segments"] == dropped:
                on_committed(seg)  # not for a segment a full disk made us drop (counted, logged)
            rt.tick()
            if interval_s > 0:
                rt.sleep(interval_s)
        deadline = time.monotonic() + until_drained_s
        while not rt.stop_event.is_set() and time.monotonic() < deadline:
            pending_upload = 0
            if rt.spool is not None and rt.uploader is not None:
                spool = rt.spool.stats()
                pending_upload = spool["pending_batches"] + spool["pending_segments"]
                if pending_upload:
                    rt.uploader.run_once()
            if rt.outbox.depth == 0 and not pending_upload:
                break
            rt.sleep(0.05)
    except BaseException:
        rt.close(detail="stopped by error")
        raise
    rt.close(detail="stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.service.publisher --config FILE --synthetic-segments N`: the transport
    without a pipeline, for reliability tests and benchmarks. Prints `committed <segment_id>` to stdout
    once each segment is durable in the outbox."""
    parser = argparse.ArgumentParser(prog="python -m tests.service.publisher", description=main.__doc__)
    parser.add_argument("--config", required=True, help="device TOML config")
    parser.add_argument("--synthetic-segments", type=int, default=10,
                        help="segments to publish (-1: until SIGTERM; 0: only drain the outbox)")
    parser.add_argument("--interval-s", type=float, default=0.05, help="seconds between segments")
    parser.add_argument("--keyframes", type=int, default=0, help="JPEG keyframes per segment (upload path)")
    parser.add_argument("--until-drained-s", type=float, default=0.0,
                        help="after the last segment, wait up to this long for the outbox to empty")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic codes")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        config = load_config(args.config)
        keyframe_bytes = _tiny_keyframes(args.keyframes) if args.keyframes > 0 else None

        def committed(seg: Segment) -> None:
            print(f"committed {seg.segment_id}", flush=True)

        return run_publisher(config, synthetic_segments(args.synthetic_segments, seed=args.seed),
                             interval_s=args.interval_s, keyframe_bytes=keyframe_bytes,
                             on_committed=committed, until_drained_s=args.until_drained_s)
    except LapsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _tiny_keyframes(n: int) -> Callable[[Segment], dict[int, bytes]]:
    import cv2
    import numpy as np

    def make(seg: Segment) -> dict[int, bytes]:
        out = {}
        for k in range(n):
            frame = seg.start_frame + k
            img = np.full((48, 64, 3), (frame * 37) % 256, np.uint8)
            out[frame] = cv2.imencode(".jpg", img)[1].tobytes()
        return out

    return make


if __name__ == "__main__":
    raise SystemExit(main())
