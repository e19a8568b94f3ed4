"""Fixtures for the edge service tests (the helpers they use live in `helpers.py`)."""

from __future__ import annotations

import pytest

from .helpers import BatchReceiver, Mosquitto, Subscriber


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def subscriber_factory():
    made: list[Subscriber] = []

    def make(port: int, **kwargs) -> Subscriber:
        s = Subscriber(port, **kwargs)
        made.append(s)
        s.wait_subscribed()
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def receiver(tmp_path):
    r = BatchReceiver(tmp_path / "received")
    yield r
    r.close()

