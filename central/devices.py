"""Who may write what: the registry of devices and central services, and the broker files made from it.

Every device authenticates as itself: on MQTT with user name = its device id and its own
password, on the batch endpoint with its own bearer token (or a client certificate whose common
name is its id). `laps-central devices add|revoke|list` maintains, in one folder
(`[devices] dir`, default `<data_dir>/devices`):

    registry.json      the source of truth (schema `laps.devices/1`): per name its role, site,
                       when it was added or revoked, the Mosquitto password hash and the sha256
                       of its batch token. No secret is stored in clear.
    mosquitto.passwd   for Mosquitto's `password_file`: one `name:$7$...` line per active name
                       (PBKDF2-SHA512, the format Mosquitto 2 writes and reads; made with
                       `mosquitto_passwd -U` when it is installed, else written here)
    mosquitto.acl      for Mosquitto's `acl_file`: `pattern` rules where `%u` (the user name,
                       i.e. the device id) is the device level of every topic a device may touch,
                       and `user` blocks for the central services and read-only viewers

Roles: "device" (needs a site; writes only `laps/v1/<any site>/<its id>/{segments,state,
batches,metrics,ota/status}`, reads only its own `acks` and `ota/desired`), "central" (the
ingest and the rollout: reads segments, state, metrics, batches and OTA status, writes acks and
OTA desired), "viewer" (reads everything, writes nothing; for `laps-edge tail`).

The `%u` rules cannot pin a device's site, so central does: once the registry lists an active
device, the ingest quarantines a segment from a device it does not know, or on another site
than the one it was registered for, and the batch endpoint wants that device's own credentials
(`RegistryView`). After `add` or `revoke`, make Mosquitto re-read the files (`kill -HUP <pid>`,
`systemctl reload mosquitto`); central re-reads the registry by itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from edge.errors import ConfigError
from edge.messages import utc_now_iso

REGISTRY_SCHEMA = "laps.devices/1"
ROLES = ("device", "central", "viewer")
HASHERS = ("auto", "mosquitto_passwd", "builtin")
#: names become MQTT user names and topic levels: the device id rule of edge.config
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
REGISTRY_FILE, PASSWD_FILE, ACL_FILE = "registry.json", "mosquitto.passwd", "mosquitto.acl"
#: what Mosquitto 2.0's mosquitto_passwd writes: PBKDF2-SHA512, 101 rounds, 12-byte salt
_PBKDF2_ROUNDS, _SALT_BYTES = 101, 12

#: topic kinds (after laps/v1/<site>/<device>/) each role may write and read
DEVICE_WRITES = ("segments", "state", "batches", "metrics", "ota/status")
DEVICE_READS = ("acks", "ota/desired")
CENTRAL_READS = ("segments", "state", "batches", "metrics", "ota/status")
CENTRAL_WRITES = ("acks",)
CENTRAL_READWRITES = ("ota/desired",)  # the rollout writes it retained and clears it


@dataclass(frozen=True)
class RegistryEntry:
    """One name in the registry. revoked: ISO time of the revocation ("" while active).
    mqtt_hash: the Mosquitto password hash; token_sha256: hex sha256 of the batch token."""

    name: str
    role: str
    site: str
    added: str
    revoked: str
    mqtt_hash: str
    token_sha256: str

    @property
    def active(self) -> bool:
        return not self.revoked


@dataclass(frozen=True)
class IssuedCredentials:
    """The secrets `add` made, in clear: handed to the device once, never stored centrally."""

    name: str
    mqtt_password: str
    token: str


class DeviceRegistry:
    """The registry folder: read, change (add, revoke) and write the broker files from it.

    folder: the `[devices] dir`. Writes are atomic (temporary file, fsync, rename), the
    registry and the password file 0600/0640, so a crash leaves the old or the new version.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.registry_path = self.folder / REGISTRY_FILE
        self.passwd_path = self.folder / PASSWD_FILE
        self.acl_path = self.folder / ACL_FILE
        self._entries = read_registry(self.registry_path)

    def entries(self) -> list[RegistryEntry]:
        """Every name ever added (revoked ones included), in the order they were added."""
        return list(self._entries.values())

    def get(self, name: str) -> RegistryEntry | None:
        return self._entries.get(name)

    def add(self, name: str, *, role: str = "device", site: str = "", hasher: str = "auto") -> IssuedCredentials:
        """Register `name` (a revoked name comes back with new secrets) and rewrite the files.
        Returns the new MQTT password and batch token in clear; ConfigError on a bad request."""
        if not NAME_RE.match(name):
            raise ConfigError(f"name {name!r} is not 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter "
                              "or digit; use the device id of the device's [device] id")
        if role not in ROLES:
            raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
        if role == "device" and not NAME_RE.match(site):
            raise ConfigError(f"site {site!r} is not a site id; give the device's [device] site with --site")
        old = self._entries.get(name)
        if old is not None and old.active:
            raise ConfigError(f"{name!r} is already registered (added {old.added}); revoke it first to issue "
                              "new credentials")
        password, token = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        self._entries[name] = RegistryEntry(
            name=name, role=role, site=site if role == "device" else "", added=utc_now_iso(), revoked="",
            mqtt_hash=mosquitto_password_hash(name, password, hasher), token_sha256=token_digest(token),
        )
        self.save()
        return IssuedCredentials(name, password, token)

    def revoke(self, name: str) -> RegistryEntry:
        """Revoke `name`: it leaves the password file and its token stops working. ConfigError
        if it is unknown or already revoked."""
        old = self._entries.get(name)
        if old is None:
            raise ConfigError(f"{name!r} is not registered; `laps-central devices list` shows who is")
        if not old.active:
            raise ConfigError(f"{name!r} was already revoked on {old.revoked}")
        self._entries[name] = replace(old, revoked=utc_now_iso())
        self.save()
        return self._entries[name]

    def save(self) -> None:
        """Write registry.json, mosquitto.passwd and mosquitto.acl (atomically, in that order)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {"schema": REGISTRY_SCHEMA, "entries": [asdict(e) for e in self._entries.values()]}
        _write_atomic(self.registry_path, json.dumps(doc, indent=1).encode(), 0o600)
        active = [e for e in self._entries.values() if e.active]
        _write_atomic(self.passwd_path, "".join(f"{e.name}:{e.mqtt_hash}\n" for e in active).encode(), 0o640)
        _write_atomic(self.acl_path, acl_text(active).encode(), 0o644)


@dataclass(frozen=True)
class RegistrySnapshot:
    """What central checks against: the active devices (id -> site) and tokens (sha256 -> id)."""

    sites: dict[str, str]
    tokens: dict[str, str]

    @property
    def enforced(self) -> bool:
        """True once any device is registered: then only registered devices are accepted."""
        return bool(self.sites)

    def device_for_token(self, token: str) -> str | None:
        return self.tokens.get(token_digest(token)) if token else None

    def check_origin(self, site: str, device: str) -> str:
        """"" when `device` may publish as `site`/`device`, else the reason it may not."""
        if not self.enforced:
            return ""
        registered = self.sites.get(device)
        if registered is None:
            return f"device {device!r} is not registered (or was revoked); add it with `laps-central devices add`"
        if registered != site:
            return f"device {device!r} is registered at site {registered!r}, not {site!r}"
        return ""


class RegistryView:
    """A registry file as central reads it while running: re-read when the file changes (at
    most once a second), so `add` and `revoke` take effect without a restart. Thread-safe."""

    def __init__(self, path: str | os.PathLike, recheck_s: float = 1.0) -> None:
        self.path = Path(path)
        self.recheck_s = recheck_s
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._snapshot = RegistrySnapshot({}, {})
        self.current()

    def current(self) -> RegistrySnapshot:
        with self._lock:
            now = time.monotonic()
            if now - self._checked < self.recheck_s and self._checked:
                return self._snapshot
            self._checked = now
            try:
                st = self.path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                entries = read_registry(self.path) if stamp is not None else {}
                active = [e for e in entries.values() if e.active and e.role == "device"]
                self._snapshot = RegistrySnapshot({e.name: e.site for e in active},
                                                  {e.token_sha256: e.name for e in active})
                self._stamp = stamp
            return self._snapshot


def read_registry(path: str | os.PathLike) -> dict[str, RegistryEntry]:
    """The entries of a registry file by name ({} when it does not exist); ConfigError when it
    is damaged."""
    p = Path(path)
    try:
        doc = json.loads(p.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ConfigError(f"device registry {p} cannot be read ({err}); restore it from a backup") from None
    if not isinstance(doc, dict) or doc.get("schema") != REGISTRY_SCHEMA:
        raise ConfigError(f"device registry {p} is not a {REGISTRY_SCHEMA} file; restore it from a backup")
    out: dict[str, RegistryEntry] = {}
    try:
        for item in doc["entries"]:
            entry = RegistryEntry(**item)
            out[entry.name] = entry
    except (KeyError, TypeError) as err:
        raise ConfigError(f"device registry {p} has a malformed entry ({err}); restore it from a backup") from None
    return out


def acl_text(entries: list[RegistryEntry]) -> str:
    """The Mosquitto ACL file for these (active) entries."""
    lines = [
        "# Generated by `laps-central devices`; edits are overwritten. Mosquitto: acl_file <this file>",
        "# Devices: %u is the MQTT user name, which is the device id, so a device reaches only",
        "# laps/v1/<site>/<its own id>/... (central checks the site against registry.json).",
    ]
    lines += [f"pattern write laps/v1/+/%u/{kind}" for kind in DEVICE_WRITES]
    lines += [f"pattern read laps/v1/+/%u/{kind}" for kind in DEVICE_READS]
    for e in entries:
        if e.role == "central":
            lines += ["", f"user {e.name}"]
            lines += [f"topic read laps/v1/+/+/{kind}" for kind in CENTRAL_READS]
            lines += [f"topic write laps/v1/+/+/{kind}" for kind in CENTRAL_WRITES]
            lines += [f"topic readwrite laps/v1/+/+/{kind}" for kind in CENTRAL_READWRITES]
        elif e.role == "viewer":
            lines += ["", f"user {e.name}", "topic read laps/v1/#"]
    return "\n".join(lines) + "\n"


def mosquitto_password_hash(name: str, password: str, hasher: str = "auto") -> str:
    """The `$7$...` hash Mosquitto 2 keeps in a password file (PBKDF2-SHA512).

    hasher "auto": `mosquitto_passwd -U` when it is on PATH (so the broker's own tool made it),
    else "builtin" (the same format computed here). The password never appears on a command
    line: `-U` hashes a 0600 temporary file in place."""
    if hasher not in HASHERS:
        raise ConfigError(f"hasher {hasher!r} is not one of {', '.join(HASHERS)}")
    tool = shutil.which("mosquitto_passwd") or ("/usr/bin/mosquitto_passwd"
                                                if os.access("/usr/bin/mosquitto_passwd", os.X_OK) else None)
    if hasher == "mosquitto_passwd" and tool is None:
        raise ConfigError("mosquitto_passwd is not installed; install mosquitto-clients/mosquitto or use "
                          "--hasher builtin")
    if hasher == "builtin" or tool is None:
        salt = os.urandom(_SALT_BYTES)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ROUNDS, 64)
        return f"$7${_PBKDF2_ROUNDS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    fd, tmp = tempfile.mkstemp(prefix=".passwd-", dir=None)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{name}:{password}\n")
        done = subprocess.run([tool, "-U", tmp], capture_output=True, text=True, timeout=30)
        line = Path(tmp).read_text().strip()
    finally:
        os.unlink(tmp)
    user, _, hashed = line.partition(":")
    if done.returncode != 0 or user != name or not hashed.startswith("$"):
        raise ConfigError(f"mosquitto_passwd -U failed ({done.stderr.strip() or 'no hash written'}); "
                          "use --hasher builtin")
    return hashed


def token_digest(token: str) -> str:
    """What the registry keeps of a batch token: its sha256 (the token is 256 random bits, so a
    slow hash adds nothing)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
