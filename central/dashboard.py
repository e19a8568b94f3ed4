"""The fleet dashboard (`laps-central serve`): read-only HTML pages over the store, rendered on
the server, served by the fleet side's one HTTP server (`central.http_server.HttpService`).

    GET /                          the fleet: devices (online/offline from their retained
                                   laps.state/1, last segment, segments per minute), the primitive
                                   library of the newest clustering run (clusters with sizes,
                                   durations, keyframe montages) and the OTA rollout (stage,
                                   per-device status)
    GET /clusters/<run>/<c>?page=N one cluster: its montage and its members, most central first
    GET /segments/<segment id>     one member: device, times, codes, cluster, keyframes and an
                                   animation of them
    GET /montages/<run>/<c>.png    a cluster's keyframe montage (drawn once, then cached)
    GET /animations/<segment>      a member's animation (animated WebP, cached)
    GET /media/<device>/...        an uploaded keyframe or clip

Pictures are drawn by the cluster report's own helpers (`central.report`), so the dashboard and
the report show a cluster the same way. Drawn files are cached under `<data_dir>/dashboard/`
(runs and uploaded media never change). Only GET and HEAD: nothing here changes the fleet.
With `[dashboard] password_file` set every request needs HTTP Basic credentials; without it
the configuration only allows a loopback address (`central.config.DashboardConfig`).
"""

from __future__ import annotations

import base64
import hmac
import html
import logging
import mimetypes
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import numpy as np

from central.config import CentralConfig
from central.fleet import ago, describe_state, device_rows
from central.http_server import HttpService
from central.report import SHORT_SEGMENT_S, animate, keyframe_montage, member_frames, pick_pictured
from central.rollout import RolloutError, RolloutState, state_path
from central.store import RunMember, ms_to_iso
from central.store_protocol import open_store

log = logging.getLogger(__name__)

#: members drawn in a cluster's montage: the most central, then random ones (as in the report)
MONTAGE_CENTRAL, MONTAGE_RANDOM, MONTAGE_KEYFRAMES = 3, 2, 3
REALM = "LAPS fleet dashboard"
#: clustering runs whose members are kept in memory (the newest is the one the front page shows)
LIBRARIES_KEPT = 2
_STYLE = (
    "body{font-family:sans-serif;margin:1.5em 2em;max-width:1300px;line-height:1.4;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
    "td.num,th.num{text-align:right}img{max-width:100%;vertical-align:top}nav a{margin-right:1em}"
    ".online{color:#1e8449;font-weight:bold}.offline{color:#b03a2e;font-weight:bold}.unknown{color:#7f8c8d}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;padding:8px;width:400px}"
    ".card h3{margin:0 0 4px 0;font-size:1.05em}.muted{color:#666;font-size:0.9em}"
    ".flag{color:#d68910;font-weight:bold}section{margin-bottom:2em}"
)


class Dashboard:
    """The dashboard of one central: its store (read-only use), media folder and rollout state.

    config: the central configuration. host/port: the address (None = `[dashboard]`'s).
    """

    def __init__(self, config: CentralConfig, host: str | None = None, port: int | None = None) -> None:
        self.config = config
        self.settings = config.dashboard
        password = self.settings.password()
        self._credentials = (f"{self.settings.username}:{password}".encode() if password else b"")
        self.media_dir = config.media_dir.resolve()
        self.cache_dir = Path(config.paths.data_dir) / "dashboard"
        self.rollout_state = RolloutState(state_path(config.paths.data_dir))
        self._libraries: dict[str, Library] = {}
        self._draw_lock = threading.Lock()
        self._library_lock = threading.Lock()
        self.service = HttpService(_handler(self), host=host or self.settings.host,
                                   port=self.settings.port if port is None else port,
                                   workers=4, queue=32, timeout_s=30.0, name="dashboard")
        self.store = open_store(config.store)

    @property
    def url(self) -> str:
        return self.service.local_url

    @property
    def requires_login(self) -> bool:
        return bool(self._credentials)

    def start(self) -> "Dashboard":
        self.service.start()
        return self

    def stop(self) -> None:
        self.service.stop()
        self.store.close()

    # -- routing ----------------------------------------------------------------------------------------
    def authorized(self, header: str | None) -> bool:
        """Whether an Authorization header carries the configured Basic credentials (always
        True without a password)."""
        if not self._credentials:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True)
        except ValueError:
            return False
        return hmac.compare_digest(given, self._credentials)

    def respond(self, target: str) -> tuple[int, str, bytes | Path]:
        """(status, content type, body or file to send) for a GET of `target` (path and query)."""
        url = urlsplit(target)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = parse_qs(url.query)
        if not parts:
            return 200, "text/html; charset=utf-8", self.overview().encode()
        head, rest = parts[0], parts[1:]
        if head == "clusters" and len(rest) == 2 and rest[1].isdigit():
            page = query.get("page", ["1"])[0]
            body = self.cluster_page(rest[0], int(rest[1]), int(page) if page.isdigit() else 1)
        elif head == "segments" and len(rest) == 1:
            body = self.segment_page(rest[0])
        elif head == "montages" and len(rest) == 2 and re.fullmatch(r"\d+\.png", rest[1]):
            path = self.montage(rest[0], int(rest[1][:-4]))
            return (200, "image/png", path) if path else _not_found()
        elif head == "animations" and len(rest) == 1:
            path = self.animation(rest[0])
            return (200, mimetypes.guess_type(path.name)[0] or "image/webp", path) if path else _not_found()
        elif head == "media" and rest:
            path = self.media_file("/".join(rest))
            return (200, mimetypes.guess_type(path.name)[0] or "application/octet-stream", path) if path else _not_found()
        else:
            body = None
        return (200, "text/html; charset=utf-8", body.encode()) if body is not None else _not_found()

    # -- pages ----------------------------------------------------------------------------------------
    def overview(self) -> str:
        """The front page: devices, the primitive library, the OTA rollout."""
        now_ms = int(time.time() * 1000)
        window_s = self.settings.rate_window_s
        rows = device_rows(self.store, self.config.devices_dir / "registry.json")
        recent = self.store.recent_segment_counts(now_ms - int(window_s * 1000))
        online = sum(1 for r in rows if r["online"])
        table = ["<table id='devices'><tr><th>site</th><th>device</th><th>state</th><th>last seen</th>"
                 "<th>last segment ended</th><th class='num'>segments</th>"
                 f"<th class='num'>segments/min (last {window_s / 60:g} min)</th><th class='num'>batches</th>"
                 "<th class='num'>quarantined</th><th>model</th></tr>"]
        for r in rows:
            cls = "online" if r["online"] else "offline" if r["online"] is False else "unknown"
            rate = recent.get((r["site"], r["device_id"]), 0) / (window_s / 60.0)
            table.append(
                f"<tr class='device' data-device='{_e(r['device_id'])}'><td>{_e(r['site'])}</td>"
                f"<td>{_e(r['device_id'])}</td><td class='{cls}'>{_e(describe_state(r))}</td>"
                f"<td>{_e(ago(r.get('last_seen_ms', 0), now_ms))}</td>"
                f"<td>{_e(ago(r.get('last_segment_end_ms', 0), now_ms))}</td>"
                f"<td class='num'>{r['segments']:,}</td><td class='num'>{rate:.2f}</td>"
                f"<td class='num'>{r['batches']:,}</td><td class='num'>{r['quarantined']:,}</td>"
                f"<td>{_e(r.get('model_version') or '-')}</td></tr>")
        table.append("</table>")
        devices = (f"<section id='devices-section'><h2>Devices</h2><p>{len(rows)} device(s), "
                   f"<span id='online-count'>{online}</span> online (from the retained state each device "
                   "publishes; the last segment ended at the device's clock).</p>" + ("".join(table) if rows else "<p>No device has sent anything yet.</p>")
                   + "</section>")
        return _page("LAPS fleet", devices + self._library_section() + self._rollout_section(), now_ms)

    def _library_section(self) -> str:
        runs = self.store.cluster_runs()
        if not runs:
            return ("<section id='library'><h2>Primitive library</h2><p>No clustering run yet: <code>laps-central cluster "
                    "--config ... --out report/</code>.</p></section>")
        run = runs[0]
        lib = self.library(run["run_id"])
        cards = []
        for c, members in enumerate(lib.clusters):
            if not members:
                continue
            d = np.array([m.duration_s for m in members])
            median = float(np.median(d))
            flag = (f" <span class='flag' title='median at most {SHORT_SEGMENT_S:g} s: probably flicker or "
                    "noise'>short</span>") if median <= SHORT_SEGMENT_S else ""
            devices = sorted({m.device_id for m in members})
            link = f"/clusters/{quote(run['run_id'])}/{c}"
            cards.append(
                f"<div class='card cluster' data-cluster='{c}' data-size='{len(members)}'>"
                f"<h3><a href='{link}'>Cluster {c}</a>{flag}</h3>"
                f"<p class='muted'>{len(members):,} segments, median {median:.2f} s (10-90 %: "
                f"{np.percentile(d, 10):.2f}-{np.percentile(d, 90):.2f} s), {len(devices)} device(s)</p>"
                f"<a href='{link}'><img src='/montages/{quote(run['run_id'])}/{c}.png' "
                f"alt='keyframes of cluster {c}'></a></div>")
        return (f"<section id='library'><h2>Primitive library</h2><p>Newest clustering run <code>{_e(run['run_id'])}</code> "
                f"({_e(run['created'])}): k = {run['k']}, {run['n_segments']:,} segments of model "
                f"<code>{_e(run['model_version'])}</code>, method {_e(run['method'])}. Each montage shows its "
                f"{MONTAGE_CENTRAL} most central members, then {MONTAGE_RANDOM} random ones (one row each).</p>"
                f"<div class='cards' id='clusters'>{''.join(cards)}</div></section>")

    def _rollout_section(self) -> str:
        try:
            data = self.rollout_state.load()
        except RolloutError as err:
            return f"<section id='rollout'><h2>OTA rollout</h2><p>{_e(str(err))}</p></section>"
        if data is None:
            return ("<section id='rollout'><h2>OTA rollout</h2><p>No rollout yet (<code>laps-central rollout "
                    "start</code>).</p></section>")
        devices = data.get("devices", {})
        counts: dict[str, int] = {}
        for d in devices.values():
            counts[d.get("state", "?")] = counts.get(d.get("state", "?"), 0) + 1
        rows = [f"<tr class='rollout-device' data-device='{_e(name)}'><td>{_e(name)}</td>"
                f"<td class='num'>{_e(str(d.get('cohort', '')))}</td><td>{_e(str(d.get('state', '')))}</td>"
                f"<td>{_e('' if d.get('installed') is None else str(d['installed']))}</td>"
                f"<td>{_e(str(d.get('detail', ''))[:200])}</td></tr>"
                for name, d in sorted(devices.items(), key=lambda kv: (kv[1].get("cohort", 0), kv[0]))]
        reason = f": {data['reason']}" if data.get("reason") else ""
        return (f"<section id='rollout'><h2>OTA rollout</h2><p>Rollout <code>{_e(str(data.get('rollout_id')))}"
                f"</code> of version {_e(str(data.get('version')))}: <b id='rollout-state'>"
                f"{_e(str(data.get('state')))}</b>{_e(reason)}, stage {_e(str(data.get('stage')))} of "
                f"{_e(str(data.get('stages')))}, started {_e(str(data.get('started', '')))}. "
                f"{_e(', '.join(f'{k} {v}' for k, v in sorted(counts.items())))}.</p>"
                "<table><tr><th>device</th><th class='num'>cohort</th><th>state</th><th>installed</th>"
                f"<th>detail</th></tr>{''.join(rows)}</table></section>")

    def cluster_page(self, run_id: str, cluster: int, page: int = 1) -> str | None:
        """One cluster's montage and members (most central first), `members_per_page` per page."""
        lib = self.library(run_id)
        if lib is None or not 0 <= cluster < len(lib.clusters) or not lib.clusters[cluster]:
            return None
        members = lib.clusters[cluster]
        per = self.settings.members_per_page
        pages = max(1, -(-len(members) // per))
        page = min(max(1, page), pages)
        shown = members[(page - 1) * per:page * per]
        media = self.store.media([m.segment_id for m in shown])
        rows = []
        for rank, m in enumerate(shown, start=(page - 1) * per + 1):
            n_key = sum(f.kind == "keyframe" for f in media.get(m.segment_id, []))
            rows.append(f"<tr class='member'><td class='num'>{rank}</td><td><a href='/segments/{quote(m.segment_id)}'>"
                        f"{_e(m.segment_id)}</a></td><td>{_e(m.site)}/{_e(m.device_id)}</td><td>{_e(m.start_utc)}</td>"
                        f"<td class='num'>{m.duration_s:.2f}</td><td class='num'>{m.distance:.3f}</td>"
                        f"<td class='num'>{n_key}</td></tr>")
        base = f"/clusters/{quote(run_id)}/{cluster}"
        nav = " ".join(f"<a href='{base}?page={p}'>{p}</a>" if p != page else f"<b>{p}</b>"
                       for p in range(1, pages + 1)) if pages > 1 else ""
        d = np.array([m.duration_s for m in members])
        body = (f"<p>Run <code>{_e(run_id)}</code>: {len(members):,} segments, duration "
                f"median {np.median(d):.2f} s (10-90 %: {np.percentile(d, 10):.2f}-{np.percentile(d, 90):.2f} s).</p>"
                f"<img src='/montages/{quote(run_id)}/{cluster}.png' alt='keyframes of cluster {cluster}'>"
                f"<h3>Members, most central first (page {page} of {pages})</h3><p>{nav}</p>"
                "<table id='members'><tr><th class='num'>#</th><th>segment</th><th>device</th><th>start (UTC)</th>"
                "<th class='num'>duration s</th><th class='num'>distance</th><th class='num'>keyframes</th></tr>"
                + "".join(rows) + f"</table><p>{nav}</p>")
        return _page(f"Cluster {cluster}", body)

    def segment_page(self, segment_id: str) -> str | None:
        """One segment: where and when, its codes, its cluster in the newest run, its pictures."""
        s = self.store.segment(segment_id)
        if s is None:
            return None
        runs = self.store.cluster_runs()
        cluster = ""
        if runs:
            hit = self.store.assignments(runs[0]["run_id"], [segment_id]).get(segment_id)
            if hit is not None:
                link = f"/clusters/{quote(runs[0]['run_id'])}/{hit[0]}"
                cluster = (f"<tr><th>cluster (newest run)</th><td><a href='{link}'>cluster {hit[0]}</a>, distance "
                           f"{hit[1]:.3f}</td></tr>")
        if s.primitive is not None:
            cluster += (f"<tr><th>primitive (the device's label)</th><td>cluster {s.primitive.cluster}, distance "
                        f"{s.primitive.distance:.3f}, library {_e(s.primitive.library)}</td></tr>")
        files = self.store.media([segment_id]).get(segment_id, [])
        pictures = "".join(f"<figure style='display:inline-block;margin:4px'><img class='keyframe' "
                           f"src='/media/{quote(f.path)}' alt='keyframe {f.frame}' width='240'>"
                           f"<figcaption class='muted'>frame {f.frame}</figcaption></figure>"
                           for f in files if f.kind == "keyframe")
        clip = next((f for f in files if f.kind == "clip"), None)
        moving = ""
        if self.animation(segment_id) is not None:
            moving = (f"<h3>As it moved</h3><img id='animation' src='/animations/{quote(segment_id)}' "
                      "alt='animation of the segment'>")
        codes = " ".join(str(int(c)) for c in s.codes[:200]) + (" ..." if s.codes.size > 200 else "")
        body = (f"<p>Segment <code id='segment-id'>{_e(s.segment_id)}</code></p><table>"
                f"<tr><th>device</th><td>{_e(s.site)}/{_e(s.device_id)}</td></tr>"
                f"<tr><th>start - end (UTC, device clock)</th><td>{_e(s.start_utc)} - {_e(s.end_utc)}</td></tr>"
                f"<tr><th>duration</th><td>{s.duration_s:.2f} s ({s.end_frame - s.start_frame} frames at "
                f"{s.fps:g} fps)</td></tr><tr><th>model</th><td>{_e(s.model_version)}</td></tr>{cluster}"
                f"<tr><th>energy mean / max</th><td>{s.energy_mean:.3f} / {s.energy_max:.3f}</td></tr>"
                f"<tr><th>FSQ codes ({s.codes.size})</th><td><code>{codes}</code></td></tr></table>"
                + moving + (f"<h3>Keyframes</h3>{pictures}" if pictures else "<p>No keyframes were uploaded.</p>")
                + (f"<p><a href='/media/{quote(clip.path)}'>the uploaded clip</a></p>" if clip else ""))
        return _page("Segment", body)

    # -- pictures -------------------------------------------------------------------------------------
    def library(self, run_id: str) -> "Library | None":
        """The run's members grouped by cluster (loaded once per run: runs never change)."""
        with self._library_lock:
            return self._load_library(run_id)

    def _load_library(self, run_id: str) -> "Library | None":
        if run_id in self._libraries:
            return self._libraries[run_id]
        run = next((r for r in self.store.cluster_runs() if r["run_id"] == run_id), None)
        if run is None:
            return None
        clusters: list[list[RunMember]] = [[] for _ in range(int(run["k"]))]
        for m in self.store.run_members(run_id):
            if 0 <= m.cluster < len(clusters):
                clusters[m.cluster].append(m)
        while len(self._libraries) >= LIBRARIES_KEPT:  # a run of millions of segments is large in memory
            self._libraries.pop(next(iter(self._libraries)))
        lib = self._libraries[run_id] = Library(run_id, clusters)
        return lib

    def montage(self, run_id: str, cluster: int) -> Path | None:
        """The cluster's keyframe montage PNG (drawn by `central.report.keyframe_montage`, cached)."""
        lib = self.library(run_id)
        if lib is None or not 0 <= cluster < len(lib.clusters) or not lib.clusters[cluster]:
            return None
        path = self.cache_dir / _safe_name(run_id) / f"cluster_{cluster:03d}_montage.png"
        with self._draw_lock:
            if not path.exists():
                members = lib.clusters[cluster]
                ids = [m.segment_id for m in members]
                media: dict = {}
                rep = pick_pictured(ids, np.arange(len(ids)), MONTAGE_CENTRAL, self.store, media)
                rest = np.setdiff1d(np.arange(len(ids)), rep)
                rng = np.random.default_rng(cluster)
                rand = np.sort(pick_pictured(ids, rng.permutation(rest), MONTAGE_RANDOM, self.store, media))
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.stem}.tmp.png")
                keyframe_montage(ids, [m.duration_s for m in members], rep, rand, media, self.media_dir,
                                 MONTAGE_KEYFRAMES, tmp)
                tmp.replace(path)
        return path

    def animation(self, segment_id: str) -> Path | None:
        """The segment's animation (`central.report.animate`, cached); None without two frames."""
        s = self.store.segment(segment_id)
        if s is None:
            return None
        folder = self.cache_dir / "animations"
        stem = folder / _safe_name(segment_id)
        with self._draw_lock:
            for suffix in (".webp", ".gif"):
                if stem.with_suffix(suffix).exists():
                    return stem.with_suffix(suffix)
            # No picture is not cached: its keyframes may arrive in a later batch.
            frames = member_frames(segment_id, self.store.media([segment_id]), self.media_dir)
            if len(frames) < 2:
                return None
            folder.mkdir(parents=True, exist_ok=True)
            name = animate(frames, s.duration_s, stem)
            return folder / name if name else None

    def media_file(self, relpath: str) -> Path | None:
        """An uploaded file under the media folder; None for anything outside it or missing."""
        path = (self.media_dir / relpath).resolve()
        if not path.is_relative_to(self.media_dir) or not path.is_file():
            return None
        return path


@dataclass
class Library:
    """A clustering run's members by cluster, each list most central first."""

    run_id: str
    clusters: list[list[RunMember]]


def _handler(dashboard: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "laps-dashboard"
        sys_version = ""

        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s %s", self.address_string(), fmt % args)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(body=False)

        def _read_only(self) -> None:
            self._send(405, "text/plain; charset=utf-8", b"the dashboard is read-only: GET and HEAD only\n",
                       body=True, extra={"Allow": "GET, HEAD"})

        do_POST = do_PUT = do_DELETE = do_PATCH = _read_only  # noqa: N815

        def _serve(self, body: bool) -> None:
            if not dashboard.authorized(self.headers.get("Authorization")):
                self._send(401, "text/plain; charset=utf-8", b"log in with the dashboard's user name and password\n",
                           body=body, extra={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})
                return
            try:
                status, ctype, content = dashboard.respond(self.path)
            except Exception:  # noqa: BLE001 - one bad page must not end the connection without an answer
                log.exception("dashboard: %s failed", self.path)
                status, ctype, content = 500, "text/plain; charset=utf-8", b"internal error; see the server log\n"
            data = content.read_bytes() if isinstance(content, Path) else content
            self._send(status, ctype, data, body=body)

        def _send(self, status: int, ctype: str, data: bytes, body: bool, extra: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            # Pages show live state; pictures of immutable runs and uploads may be kept a while.
            self.send_header("Cache-Control", "no-store" if ctype.startswith("text/") else "private, max-age=300")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy",
                             "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; media-src 'self'")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler


def _page(title: str, body: str, now_ms: int | None = None) -> str:
    stamp = ms_to_iso(now_ms if now_ms is not None else int(time.time() * 1000))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_STYLE}</style>"
            "</head><body><nav><a href='/'>LAPS fleet</a><a href='/#devices-section'>devices</a>"
            "<a href='/#library'>primitive library</a><a href='/#rollout'>OTA rollout</a></nav>"
            f"<h1>{_e(title)}</h1>"
            f"<p class='muted'>As of {_e(stamp)} (reload for newer).</p>{body}</body></html>\n")


def _not_found() -> tuple[int, str, bytes]:
    return 404, "text/plain; charset=utf-8", b"not found\n"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _safe_name(text: str) -> str:
    """A file name for an id (run ids and segment ids are UUIDs; anything else is flattened)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:120] or "_"
