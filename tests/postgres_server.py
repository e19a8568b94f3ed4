"""A REAL PostgreSQL server of our own for the store tests and benchmarks: `initdb` into a temporary
folder, `pg_ctl start` on a free loopback port (TCP only, no Unix socket), one database per test,
`pg_ctl stop` at the end (and the postmaster's own pid killed if that does not stop it).

The binaries are found on PATH (`initdb`, `pg_ctl`) or under the Debian layout
/usr/lib/postgresql/<major>/bin (`apt-get install postgresql` puts them there and not on PATH);
without either, `find_binaries()` returns None and the callers skip with that reason. PostgreSQL
refuses to run as root: as root, the server runs as the `postgres` user (which the Debian
package creates) in a folder handed to it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.service.helpers import free_port, wait_until

#: why the PostgreSQL tests skip when no server binaries exist
MISSING = ("PostgreSQL server binaries (initdb, pg_ctl) are not installed; apt-get install -y postgresql "
           "(Debian puts them under /usr/lib/postgresql/<major>/bin)")
SUPERUSER = "laps"


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH first, then the newest Debian major; None if absent."""
    on_path = shutil.which("initdb")
    if on_path and Path(on_path).with_name("pg_ctl").exists():
        return Path(on_path).parent
    majors = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]), reverse=True)
    for initdb in majors:
        if Path(initdb).with_name("pg_ctl").exists():
            return Path(initdb).parent
    return None


class PostgresServer:
    """One postgres on 127.0.0.1:`port` with trust authentication for the superuser `laps`.

    durable: False (tests) turns fsync off, so creating databases and committing cost no disk
    flushes; True (benchmarks) keeps PostgreSQL's defaults, fsync per commit, as in production.
    """

    def __init__(self, bindir: Path, durable: bool = False) -> None:
        self.bindir = Path(bindir)
        self.durable = durable
        self.port = free_port()
        # Not under pytest's tmp_path: as root the server runs as `postgres`, which must reach its folder.
        self.dir = Path(tempfile.mkdtemp(prefix="laps-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self._user = _unprivileged_user()
        self._counter = 0

    # -- life cycle --------------------------------------------------------------------------------
    def start(self) -> "PostgresServer":
        if self._user is not None:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        if not self.data.exists():  # a restart after `stop(remove=False)` keeps its databases
            self._run("initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "--no-locale", "-E", "UTF8",
                      "--no-sync")
        options = [f"-p {self.port}", "-c listen_addresses=127.0.0.1", "-c unix_socket_directories=''",
                   "-c max_connections=200"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log_path), "-w", "-t", "60",
                  "-o", " ".join(options))
        if not wait_until(self._accepting, 30.0, interval=0.1):
            self.stop()
            raise RuntimeError(f"postgres did not accept connections on port {self.port}: {self.log_text()[-2000:]}")
        return self

    def stop(self, remove: bool = True) -> None:
        """pg_ctl stop (fast: open sessions are ended); if the postmaster still runs, kill its own
        pid. remove: delete the data folder too (False: `start()` brings the same server back)."""
        pid = self.pid()
        if self.data.exists():
            try:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", check=False)
            except subprocess.TimeoutExpired:
                pass
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGQUIT)  # the postmaster's immediate shutdown
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    def pid(self) -> int | None:
        """The postmaster's pid from its postmaster.pid (None when it is not running)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    # -- databases ---------------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "laps") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- internals ---------------------------------------------------------------------------------
    def _accepting(self) -> bool:
        import psycopg

        try:
            psycopg.connect(self.url(), connect_timeout=2).close()
            return True
        except psycopg.OperationalError:
            return False

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / tool), *args]
        if self._user is not None:
            cmd = ["runuser", "-u", self._user.pw_name, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.dir)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        return proc


def _unprivileged_user() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (PostgreSQL refuses root); None otherwise."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists for the server")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); pg_ctl daemonises, so the postmaster is not our child.
    return True
