"""The device's on-disk model store: installed bundles, `current`/`previous`, the state file.

Layout under `ota.root`:

    bundles/<version>/      installed bundles (each a model directory, read-only by convention)
    staging/<version>/      downloads in progress (`*.part` files resume after a restart)
    current -> bundles/<v>  what the pipeline loads (a relative symlink)
    previous -> bundles/<v> the model `current` replaced, kept for the swap back
    state.json              {"committed", "pending", "previous", "deny": {version: reason}, "history"}

Every change is crash-safe: a symlink is replaced by making a new one under a temporary name and
`os.replace`-ing it over the old (atomic on POSIX), the state file is written to a temporary file,
fsynced and renamed, and the directory is fsynced after each rename. The swap order is: state
says `pending=<new>` -> `previous` -> `current`; commit is the state saying `committed=<new>`.
So after a power cut at any point `recover()` finds either a committed `current` or a pending
version, which it treats as failed (boot-counter semantics): `current` back to the committed
model, the pending version deny-listed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ConfigError
from edge.ota.download import fsync_dir
from edge.ota.steps import reached

STATE_NAME = "state.json"
STATE_SCHEMA = "laps.ota-state/1"
HISTORY_MAX = 50


@dataclass
class OtaState:
    """What the store knows. Versions are ints; `deny` maps a version to the reason it failed."""

    committed: int | None = None
    pending: int | None = None
    previous: int | None = None
    deny: dict[int, str] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema": STATE_SCHEMA, "committed": self.committed, "pending": self.pending,
                "previous": self.previous, "deny": {str(k): v for k, v in sorted(self.deny.items())},
                "history": self.history[-HISTORY_MAX:]}

    @classmethod
    def from_dict(cls, data: dict) -> "OtaState":
        return cls(committed=data.get("committed"), pending=data.get("pending"), previous=data.get("previous"),
                   deny={int(k): str(v) for k, v in (data.get("deny") or {}).items()},
                   history=list(data.get("history") or []))


class OtaStore:
    """The store at `root` (created on first use)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.bundles = self.root / "bundles"
        self.staging = self.root / "staging"
        self.state_path = self.root / STATE_NAME
        try:
            self.bundles.mkdir(parents=True, exist_ok=True)
            self.staging.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"ota.root {str(self.root)!r} cannot be created ({err.strerror}); point ota.root at a writable "
                "local folder (systemd StateDirectory=)"
            ) from None

    # -- state -----------------------------------------------------------------------------------
    def load(self) -> OtaState:
        """The current state (an empty one when no update ever happened)."""
        try:
            return OtaState.from_dict(json.loads(self.state_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return OtaState()
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"OTA state file {self.state_path} is unreadable ({err}); it is written atomically, so the disk "
                "is failing or someone edited it: restore it or delete it to start from the installed model"
            ) from None

    def save(self, state: OtaState) -> None:
        """Write the state atomically (temporary file, fsync, rename, fsync of the folder)."""
        tmp = self.state_path.with_name(STATE_NAME + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state.to_dict(), fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)
        fsync_dir(self.root)

    def record(self, state: OtaState, event: str, version: int | None, detail: str = "") -> None:
        from edge.messages import utc_now_iso

        state.history.append({"time": utc_now_iso(), "event": event, "version": version, "detail": detail})
        del state.history[:-HISTORY_MAX]

    # -- paths -------------------------------------------------------------------------------------
    def bundle_dir(self, version: int) -> Path:
        return self.bundles / str(int(version))

    def staging_dir(self, version: int) -> Path:
        return self.staging / str(int(version))

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def previous(self) -> Path:
        return self.root / "previous"

    def linked_version(self, name: str) -> int | None:
        """The version a symlink (`current` or `previous`) points at, or None."""
        try:
            target = os.readlink(self.root / name)
        except OSError:
            return None
        try:
            return int(Path(target).name)
        except ValueError:
            return None

    def current_dir(self) -> Path:
        """The resolved folder of the current model (so a later swap never changes files under a
        running pipeline)."""
        version = self.linked_version("current")
        if version is None:
            raise ConfigError(f"OTA store {self.root} has no current model; set model.dir to seed it")
        return self.bundle_dir(version)

    # -- the swap ------------------------------------------------------------------------------------
    def seed(self, model_dir: str | os.PathLike) -> int:
        """First start: copy a local model directory in as the committed factory model.

        Its version is the model manifest's `version` (0 when absent). Returns it. A store that
        already has a committed model is left alone.
        """
        state = self.load()
        if state.committed is not None:
            return state.committed
        src = Path(model_dir)
        try:
            manifest = json.loads((src / "manifest.json").read_text(encoding="utf-8"))
            version = int(manifest.get("version", 0))
        except (OSError, ValueError, TypeError) as err:
            raise ConfigError(f"model.dir {src} cannot seed the OTA store ({err}); point it at a model directory") from None
        dest = self.bundle_dir(version)
        if not dest.exists():
            tmp = self.bundles / f".seed-{version}"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                shutil.copytree(src, tmp, symlinks=False)
            except (OSError, shutil.Error) as err:
                shutil.rmtree(tmp, ignore_errors=True)
                first = err.args[0][0][2] if isinstance(err, shutil.Error) and err.args and err.args[0] else str(err)
                raise ConfigError(f"model.dir {src} cannot be copied into the OTA store {self.root} ({first}); "
                                  "free disk space there or point ota.root elsewhere") from None
            os.replace(tmp, dest)
            fsync_dir(self.bundles)
        self.link("current", version)
        state.committed = version
        self.record(state, "seeded", version, f"from {src}")
        self.save(state)
        return version

    def install(self, version: int) -> Path:
        """Move a verified staging folder to bundles/<version> (atomic rename)."""
        src, dest = self.staging_dir(version), self.bundle_dir(version)
        if dest.exists():
            if dest.resolve() == self.current_dir().resolve():
                raise ConfigError(f"bundle {version} is the current model; it cannot be reinstalled")
            shutil.rmtree(dest)
        os.replace(src, dest)
        fsync_dir(self.bundles)
        fsync_dir(self.staging)
        reached("installed")
        return dest

    def begin_swap(self, version: int) -> None:
        """Make `version` current, uncommitted: state pending -> `previous` -> `current`."""
        state = self.load()
        state.pending, state.previous = version, state.committed
        self.record(state, "swapped", version)
        self.save(state)
        reached("pending_written")
        if state.committed is not None:
            self.link("previous", state.committed)
        reached("previous_linked")
        self.link("current", version)
        reached("current_swapped")

    def commit(self, version: int) -> None:
        """The health window passed: `version` becomes the committed model."""
        state = self.load()
        state.committed, state.pending = version, None
        state.deny.pop(version, None)
        self.record(state, "committed", version)
        self.save(state)
        reached("committed")

    def roll_back(self, version: int, reason: str, deny: bool = True) -> int | None:
        """Swap `current` back to the committed model and (unless `deny` is False: a clean stop
        interrupted the update) deny-list `version`. Returns the committed version now current."""
        state = self.load()
        if state.committed is not None:
            self.link("current", state.committed)
        if deny:
            state.deny[version] = reason
        if state.pending == version:
            state.pending = None
        self.record(state, "rolled_back", version, reason)
        self.save(state)
        return state.committed

    def deny(self, version: int, reason: str) -> None:
        """Deny-list a version that was never swapped in (bad signature, hash, self-test)."""
        state = self.load()
        state.deny[version] = reason
        self.record(state, "refused", version, reason)
        self.save(state)
        shutil.rmtree(self.staging_dir(version), ignore_errors=True)

    def recover(self) -> list[tuple[int, str]]:
        """At start: a pending (never committed) version is treated as failed and rolled back;
        `current` is made to point at the committed model. Returns [(version, reason)] rolled back."""
        state = self.load()
        events = []
        if state.pending is not None:
            reason = "never committed: the device restarted during its update (boot-counter rule)"
            self.roll_back(state.pending, reason)
            events.append((state.pending, reason))
            state = self.load()
        if state.committed is not None and self.linked_version("current") != state.committed:
            self.link("current", state.committed)
        for tmp in self.root.glob(".*.tmp-link"):
            tmp.unlink(missing_ok=True)
        return events

    def prune(self, keep: int) -> list[int]:
        """Delete installed bundles beyond the newest `keep`, never current/previous/pending."""
        state = self.load()
        protected = {state.committed, state.previous, state.pending, self.linked_version("current"),
                     self.linked_version("previous")}
        versions = sorted((int(p.name) for p in self.bundles.iterdir() if p.name.isdigit()), reverse=True)
        removed = []
        for v in versions[keep:]:
            if v not in protected:
                shutil.rmtree(self.bundle_dir(v), ignore_errors=True)
                removed.append(v)
        return removed

    def link(self, name: str, version: int) -> None:
        """Point symlink `name` at bundles/<version>: new link under a temporary name, rename
        over the old one (atomic), fsync the folder."""
        tmp = self.root / f".{name}.tmp-link"
        tmp.unlink(missing_ok=True)
        os.symlink(f"bundles/{int(version)}", tmp)
        os.replace(tmp, self.root / name)
        fsync_dir(self.root)
