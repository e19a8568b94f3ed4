"""`laps-central ingest`'s Prometheus endpoint: a real ingest process on a real broker, fed real
segment messages (and one bad one), scraped over HTTP and parsed with prometheus-client's parser."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from central_testkit import IngestProcess, free_port, make_segments, segment_payloads, stored_ids, wait_until, \
    write_central_config


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of one scrape of http://127.0.0.1:<port>/metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


@pytest.mark.broker
def test_a_running_ingest_exposes_its_rate_quarantine_lag_and_store_size(broker, publisher, registry_dir, tmp_path):
    port = free_port()
    cfg = write_central_config(tmp_path / "central.toml", port=broker.port, data_dir=tmp_path / "data",
                               models_dir=registry_dir, extra=f"\n[metrics]\nprometheus_port = {port}\n")
    ingest = IngestProcess(cfg, tmp_path / "ingest.log")
    try:
        assert wait_until(lambda: _try_scrape(port) is not None, 30), ingest.log_text()[-2000:]
        assert wait_until(lambda: _try_scrape(port)[("laps_central_ingest_connected_workers", ())] == 1, 30)
        # Segments that ended 39-59 s ago (5 s apart), one of them twice, and a message that is
        # not a segment.
        origin = datetime.now(timezone.utc) - timedelta(seconds=60)
        items = segment_payloads(make_segments(5, origin=origin))
        topic = items[0][0]
        publisher.publish_all(items + items[:1] + [(topic, b"not json")])
        assert wait_until(lambda: len(stored_ids(tmp_path / "data" / "central.sqlite")) == 5, 30)
        assert wait_until(lambda: _try_scrape(port)[("laps_central_ingest_messages_total",
                                                     (("outcome", "quarantined"),))] == 1, 30)
        m = scrape(port)
    finally:
        assert ingest.stop() == 0, ingest.log_text()[-2000:]

    def outcome(name: str) -> float:
        return m[("laps_central_ingest_messages_total", (("outcome", name),))]

    assert (outcome("stored"), outcome("duplicate"), outcome("quarantined")) == (5, 1, 1)
    assert m[("laps_central_ingest_commits_total", ())] >= 1
    assert m[("laps_central_ingest_lag_seconds_count", ())] == 6  # every segment message committed
    mean_lag = m[("laps_central_ingest_lag_seconds_sum", ())] / 6
    assert 38.0 <= mean_lag <= 120.0
    assert 38.0 <= m[("laps_central_ingest_lag_last_max_seconds", ())] <= 120.0
    assert m[("laps_central_ingest_queued_messages", ())] == 0
    assert m[("laps_central_store_segments", ())] == 5
    assert m[("laps_central_store_quarantined_messages", ())] == 1
    assert m[("laps_central_store_size_bytes", ())] > 4096


def _try_scrape(port: int) -> dict | None:
    try:
        return scrape(port)
    except OSError:
        return None
