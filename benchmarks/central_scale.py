"""Central at fleet scale: ingest segments/s into SQLite and into PostgreSQL with several ingest
processes, and clustering 1M-10M segments single-process against Apache Spark.

Clustering part (`benchmarks/central_scale_clustering.py`, its docstring says what each row is):
Spark local[2] against the single-process engine in the same run (agreement on held-out seeds
950-959, then time and peak memory at each size). `--skip ingest` or `--skip clustering` runs one
part; each part writes its own results file (`central_scale.json`, `central_scale_clustering.json`).

Ingest part (`ingest_rows`, `benchmarks/results/central_scale.json`): segment messages (the
clustering benchmark's `fleet_payloads`: 10 devices, 20 codes and a motion summary each) published by 4 device
clients (QoS 1) through a real Mosquitto to `laps-central ingest` PROCESSES (each its own
client in one shared-subscription group, each acknowledging after its commit), into
    - the SQLite store (synchronous=FULL: fsync per commit), one process: the BASELINE;
    - a real PostgreSQL 15 server on this machine (`initdb` + `pg_ctl`, default durability:
      fsync on, synchronous_commit on) with 1, 2 and 4 processes sharing one database, as
      several ingest hosts would.
Each run gets a fresh broker and a fresh store; the processes are started and subscribed
before the clock starts, which stops when the store holds every message. Median over
`--repeats`. Also the store alone (validated messages inserted directly, 200 per transaction,
no broker), for SQLite and PostgreSQL: how much of each row is the store's own cost.

On a 2-core machine the broker, the publishers, PostgreSQL and the ingest processes share the
same two cores, so the rows with more processes measure contention here, not the scaling of
separate hosts; the README says what they show.

Run: `python -m benchmarks.central_scale` (options: --help). Needs mosquitto and the PostgreSQL
server binaries (apt-get install mosquitto postgresql) and the [postgres] extra.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.clustering import _publish, fleet_payloads
from benchmarks.common import print_table, write_results

WORKERS = (1, 2, 4)


def ingest_rows(n: int, repeats: int, work: Path, workers: tuple[int, ...] = WORKERS) -> list[dict]:
    """Rows: SQLite through Mosquitto (baseline), PostgreSQL through Mosquitto with each count
    of ingest processes in `workers`, and the direct-insert rows of both stores."""
    from tests.postgres_server import MISSING, PostgresServer, find_binaries

    bindir = find_binaries()
    if bindir is None:
        raise SystemExit(MISSING)
    items = fleet_payloads(n)
    server = PostgresServer(bindir, durable=True).start()
    rows: list[dict] = []
    try:
        base = float(np.median([_through_broker(items, 1, f"sqlite:///{work}/bench-{r}.sqlite", work, f"s{r}")
                                for r in range(repeats)]))
        rows.append({"name": "ingest: 4 device clients -> Mosquitto -> 1 ingest process -> SQLite (FULL), baseline",
                     "messages": n, "processes": 1, "segments_per_s": n / base, "ratio_vs_sqlite": 1.0})
        for k in workers:
            times = []
            for r in range(repeats):
                url = server.create_database("bench")
                try:
                    times.append(_through_broker(items, k, url, work, f"p{k}-{r}"))
                finally:
                    server.drop_database(url)
            t = float(np.median(times))
            rows.append({"name": f"ingest: 4 device clients -> Mosquitto -> {k} ingest process(es) -> PostgreSQL "
                                 "(synchronous_commit on), one database", "messages": n, "processes": k,
                         "segments_per_s": n / t, "ratio_vs_sqlite": base / t})
        for backend in ("sqlite", "postgresql"):
            times = []
            for r in range(repeats):
                if backend == "sqlite":
                    times.append(_direct(items, f"sqlite:///{work}/direct-{r}.sqlite"))
                    continue
                url = server.create_database("direct")
                try:
                    times.append(_direct(items, url))
                finally:
                    server.drop_database(url)
            t = float(np.median(times))
            rows.append({"name": f"store alone: validate + insert directly into {backend}, 200 per transaction "
                                 "(no broker)", "messages": n, "processes": 1, "segments_per_s": n / t,
                         "ratio_vs_sqlite": base / t})
    finally:
        server.stop()
    return rows


def _through_broker(items: list[tuple[str, bytes]], processes: int, url: str, work: Path, tag: str) -> float:
    """Seconds from the first publish until the store holds every message, `processes` ingest
    processes subscribed beforehand; a fresh broker per run (no sessions left from earlier runs)."""
    from central.config import StoreConfig
    from central.store_protocol import open_store
    from tests.service.helpers import Mosquitto, wait_until

    broker = Mosquitto(work / f"broker-{tag}", quiet=True)
    with open(broker.conf, "a") as fh:
        fh.write("log_type subscribe\n")  # the subscriptions only: to know when every process listens
    broker.start()
    procs: list[subprocess.Popen] = []
    try:
        for i in range(processes):
            cfg = work / f"{tag}-{i}.toml"
            cfg.write_text(f'[paths]\ndata_dir = "{work}/{tag}-{i}"\n[store]\nurl = "{url}"\n'
                           f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nclient_id = "bench-{tag}-{i}"\n'
                           "[http]\nenabled = false\n")
            log = open(work / f"{tag}-{i}.log", "wb")
            procs.append(subprocess.Popen([sys.executable, "-m", "central.cli", "ingest", "--config", str(cfg),
                                           "--stats-interval", "0"], stdout=log, stderr=log))
        if not wait_until(lambda: broker.log_text().count("$share/") >= processes, 60.0, interval=0.05):
            raise SystemExit(f"not every ingest process subscribed; see {work}/{tag}-*.log")
        with open_store(StoreConfig(url=url, pool_size=1)) as store:
            t0 = time.perf_counter()
            _publish(broker.port, items, clients=4)
            while store.count() < len(items):
                if time.perf_counter() - t0 > 600:
                    raise SystemExit(f"ingest stored {store.count()} of {len(items)} in 600 s")
                time.sleep(0.02)
            elapsed = time.perf_counter() - t0
            assert store.count() == len(items)
        return elapsed
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
        broker.stop()


def _direct(items: list[tuple[str, bytes]], url: str) -> float:
    from central.config import StoreConfig
    from central.ingest import validate_segment
    from central.store_protocol import open_store

    with open_store(StoreConfig(url=url, pool_size=1)) as store:
        t0 = time.perf_counter()
        for a in range(0, len(items), 200):
            store.ingest([(validate_segment(t, p), t) for t, p in items[a:a + 200]], [])
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ingest-messages", type=int, default=20000, help="messages per run (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs per row; the median is reported (default: %(default)s)")
    p.add_argument("--workers", default=",".join(map(str, WORKERS)),
                   help="ingest process counts for the PostgreSQL rows (default: %(default)s)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: ingest, clustering")
    p.add_argument("--sizes", default=None,
                   help="segments per clustering scale row (default: the clustering part's, 1M and 10M)")
    args = p.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - {"ingest", "clustering"}:
        raise SystemExit(f"--skip {args.skip!r}: the parts are ingest and clustering")
    if "ingest" not in skip:
        workers = tuple(int(w) for w in args.workers.split(",") if w.strip())
        work = Path(tempfile.mkdtemp(prefix="bench-central-scale-"))
        try:
            rows = ingest_rows(args.ingest_messages, args.repeats, work, workers)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print_table(rows, title="central at scale: ingest")
        write_results("central_scale", rows, extra={"ingest_messages": args.ingest_messages, "repeats": args.repeats})
    if "clustering" not in skip:
        from benchmarks import central_scale_clustering

        central_scale_clustering.main([] if args.sizes is None else ["--sizes", args.sizes])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
