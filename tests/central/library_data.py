"""A small stored fleet for the clustering, report, export and CLI tests: segments of three
code motifs from two devices, ingested exactly as messages are, with keyframes uploaded for
some of them through a real batch archive."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from central.batches import receive_batch
from central.ingest import validate_segment
from central.store import Store
from central_testkit import make_segments, segment_payloads
from edge.upload import BatchSpool

MOTIFS = ([10, 700, 1500], [300, 301, 1900], [1200, 55, 980])


def fill_store(store: Store, media_dir: Path, spool_dir: Path, n: int = 60, seed: int = 0) -> dict[str, str]:
    """Store `n` segments (motif i % 3, alternating devices); keyframes for every second one of each device.
    Returns segment_id -> motif name (the ground truth)."""
    rng = np.random.default_rng(seed)
    codes = [np.resize(MOTIFS[i % 3], int(rng.integers(6, 12))).tolist() for i in range(n)]
    segments = make_segments(n, codes=codes, keyframes=2)
    truth = {s.segment_id: f"motif{i % 3}" for i, s in enumerate(segments)}
    for device in ("dev-1", "dev-2"):
        mine = [s for i, s in enumerate(segments) if (i % 2 == 0) == (device == "dev-1")]
        payloads = segment_payloads(mine, device=device)
        store.ingest([(validate_segment(t, p), t) for t, p in payloads], [])
        spool = BatchSpool(spool_dir / device, device_id=device, site="site-a")
        for s in mine[::2]:
            spool.add_segment(s.segment_id, {f: _jpeg(int(s.codes[0]) % 255) for f in s.keyframes})
        batch = spool.seal()
        receive_batch(store, media_dir, device, batch.sha256, batch.path)
    return truth


def _jpeg(value: int) -> bytes:
    img = np.full((60, 80, 3), value, np.uint8)
    cv2.circle(img, (40, 30), 12, (0, 0, 255), -1)
    return cv2.imencode(".jpg", img)[1].tobytes()
