"""The sd_notify protocol against a real AF_UNIX datagram socket (path and abstract)."""

from __future__ import annotations

import os
import socket
import time

import pytest

from edge.sdnotify import SystemdNotifier


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(2.0)
    yield path, sock
    sock.close()


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_with_status_is_one_datagram(notify_socket):
    path, sock = notify_socket
    n = SystemdNotifier(socket_path=path, watchdog_usec=0)
    assert n.ready("running: camera ok")
    assert receive(sock) == ["READY=1", "STATUS=running: camera ok"]


def test_status_text_is_kept_on_one_line(notify_socket):
    path, sock = notify_socket
    SystemdNotifier(socket_path=path, watchdog_usec=0).status("two\nlines")
    assert receive(sock) == ["STATUS=two lines"]


def test_stopping_watchdog_and_extend_timeout(notify_socket):
    path, sock = notify_socket
    n = SystemdNotifier(socket_path=path, watchdog_usec=0)
    n.stopping()
    n.watchdog()
    n.extend_timeout(90)
    assert receive(sock) == ["STOPPING=1"]
    assert receive(sock) == ["WATCHDOG=1"]
    assert receive(sock) == ["EXTEND_TIMEOUT_USEC=90000000"]


def test_abstract_socket_name_starting_with_at(tmp_path):
    name = f"laps-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        assert SystemdNotifier(socket_path="@" + name, watchdog_usec=0).ready()
        assert receive(sock) == ["READY=1"]
    finally:
        sock.close()


def test_watchdog_interval_comes_from_the_environment(monkeypatch, notify_socket):
    path, _ = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SystemdNotifier().watchdog_interval_s == 2.0


def test_watchdog_for_another_pid_is_ignored(monkeypatch, notify_socket):
    path, _ = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert SystemdNotifier().watchdog_interval_s is None


def test_watchdog_tick_pings_at_most_four_times_per_period(notify_socket):
    path, sock = notify_socket
    n = SystemdNotifier(socket_path=path, watchdog_usec=1_000_000)
    sent = [n.watchdog_tick(now=t) for t in (10.0, 10.1, 10.2, 10.26, 10.3, 10.52)]
    assert sent == [True, False, False, True, False, True]
    assert [receive(sock) for _ in range(3)] == [["WATCHDOG=1"]] * 3


def test_without_notify_socket_every_call_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = SystemdNotifier()
    assert not n.enabled and n.ready() is False and n.watchdog_tick() is False


def test_vanished_manager_socket_does_not_raise(tmp_path):
    n = SystemdNotifier(socket_path=str(tmp_path / "gone.sock"), watchdog_usec=0)
    assert n.ready() is False
    assert n.status("still alive") is False
