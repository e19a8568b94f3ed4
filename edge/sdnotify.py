"""systemd's sd_notify protocol, spoken directly (no libsystemd on the device is needed).

The service manager passes a datagram socket in $NOTIFY_SOCKET (a path, or an abstract
socket name when it starts with '@'). Each notification is one datagram of newline-separated
`KEY=VALUE` lines: READY=1 once the pipeline is warm, WATCHDOG=1 at least every
`WatchdogSec/2` (systemd passes the period in $WATCHDOG_USEC, for the process in
$WATCHDOG_PID), STATUS=<text> for `systemctl status`, STOPPING=1 on shutdown, and
EXTEND_TIMEOUT_USEC=<us> while a slow start is still making progress.

Outside systemd (no $NOTIFY_SOCKET) every call is a cheap no-op that returns False.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends sd_notify datagrams. `socket_path`: None = take $NOTIFY_SOCKET from the environment.

    `watchdog_usec`: None = take $WATCHDOG_USEC (honoured only when $WATCHDOG_PID is unset or
    names this process, as systemd documents).
    """

    def __init__(self, socket_path: str | None = None, watchdog_usec: int | None = None) -> None:
        env = os.environ
        self.socket_path = env.get("NOTIFY_SOCKET", "") if socket_path is None else socket_path
        if watchdog_usec is None:
            pid = env.get("WATCHDOG_PID", "")
            raw = env.get("WATCHDOG_USEC", "")
            ok_pid = not pid or (pid.isdigit() and int(pid) == os.getpid())
            watchdog_usec = int(raw) if raw.isdigit() and ok_pid else 0
        #: watchdog period in seconds; None when systemd did not ask for pings
        self.watchdog_interval_s: float | None = watchdog_usec / 1e6 if watchdog_usec > 0 else None
        self._sock: socket.socket | None = None
        self._address: str | bytes = ""
        self._last_ping = 0.0
        self._warned = False
        if self.socket_path:
            if self.socket_path.startswith("@"):
                # Abstract namespace: a leading NUL byte instead of '@'.
                self._address = b"\0" + self.socket_path[1:].encode()
            elif self.socket_path.startswith("/"):
                self._address = self.socket_path
            else:
                log.warning("NOTIFY_SOCKET=%r is neither a path nor '@abstract'; not notifying systemd",
                            self.socket_path)
                self.socket_path = ""
            if self.socket_path:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """True when a notify socket is configured."""
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send `KEY=VALUE` fields as one datagram. Returns True if it was sent."""
        if self._sock is None:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            self._sock.sendto(message, self._address)
            return True
        except OSError as err:
            # A vanished manager socket must never take the service down; warn once.
            if not self._warned:
                log.warning("sd_notify to %s failed (%s); continuing without systemd notifications",
                            self.socket_path, err)
                self._warned = True
            return False

    def ready(self, status: str = "") -> bool:
        """READY=1 (the unit becomes active), with an optional STATUS text."""
        return self.notify("READY=1", *([_status(status)] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(_status(text))

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([_status(status)] if status else []))

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for `seconds` more start (or stop) time; for slow but progressing warm-ups."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def watchdog(self) -> bool:
        """WATCHDOG=1 now."""
        self._last_ping = time.monotonic()
        return self.notify("WATCHDOG=1")

    def watchdog_tick(self, now: float | None = None) -> bool:
        """Ping the watchdog if a quarter of its period has passed since the last ping.

        Called from the frame loop on every frame: cheap when not due, and a stuck loop stops
        pinging, which is exactly what the watchdog must notice. Returns True if it pinged.
        """
        if self.watchdog_interval_s is None or self._sock is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_ping < self.watchdog_interval_s / 4.0:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _status(text: str) -> str:
    # A notification field is one line.
    return "STATUS=" + " ".join(text.split())
