"""Typed OTA failures (one-line messages, like every `LapsError`)."""

from __future__ import annotations

from edge.errors import LapsError, ModelError


class OtaError(LapsError):
    """An update step failed; the message names the step, the value and what to do."""


class BundleRejected(ModelError):
    """A bundle is unsigned, signed by untrusted keys, tampered with, or not allowed (version rule).

    A rejected bundle is the bundle's fault: its version is deny-listed on the device."""


class DownloadFailed(OtaError):
    """The transfer failed (network, server, disk). Not the bundle's fault: retried later."""


class SelfTestFailed(OtaError):
    """The bundle's golden vectors did not reproduce on this device."""


class HealthCheckFailed(OtaError):
    """The restarted pipeline did not stay healthy for the health window."""
