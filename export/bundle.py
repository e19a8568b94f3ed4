"""Signed model bundles for OTA (`laps-export bundle build|keygen|sign|verify`).

A bundle is a model directory plus its calibration, with a manifest carrying TUF-like fields
(monotonic version, per-file size and sha256, an advisory expiry, an optional signed rollback
marker) and `manifest.sig` holding one or more Ed25519 signatures. The format and the device-side
verification live in `edge.ota.manifest`; this module only writes.
"""

from __future__ import annotations

import base64
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from edge.calibration_file import CalibrationFile
from edge.errors import ConfigError, LapsError
from edge.model import CALIBRATION_NAME, MANIFEST_NAME, load_model_directory, save_manifest
from edge.model.directory import file_listing
from edge.ota.manifest import (
    SIGNATURE_NAME,
    BundleManifest,
    load_trusted_keys,
    parse_manifest,
    parse_signatures,
    sign_manifest,
    signatures_bytes,
    verify_bundle_directory,
)


class BundleError(LapsError):
    """A bundle cannot be built, signed or verified as asked (one line: what, value, fix)."""


def default_version(now: datetime | None = None) -> int:
    """A monotonic version from the UTC time: YYYYMMDDHHMMSS as an integer."""
    now = now or datetime.now(timezone.utc)
    return int(now.strftime("%Y%m%d%H%M%S"))


def build_bundle(
    model_dir: str | os.PathLike,
    calibration: str | os.PathLike,
    out: str | os.PathLike,
    *,
    version: int | None = None,
    bundle_id: str = "",
    expires_days: float = 365.0,
    rollback_from: Iterable[int] = (),
) -> Path:
    """Write an unsigned bundle to `out` from a verified model directory and a calibration file.

    version: the monotonic bundle version (default `default_version()`); it must be newer than
    the model directory's own version unless `rollback_from` is given (a signed downgrade).
    expires_days: the advisory expiry. rollback_from: committed versions this bundle may replace
    even though it is older. Returns the bundle folder.
    """
    md = load_model_directory(model_dir)  # verifies every file's hash first
    src = Path(model_dir)
    dest = Path(out)
    if dest.exists() and any(dest.iterdir()):
        raise BundleError(f"bundle folder {dest} exists and is not empty; pick a new --out")
    cal_path = Path(calibration)
    try:
        cal = CalibrationFile.read(cal_path)  # one the device would refuse is refused now
    except ConfigError as err:
        raise BundleError(f"{err} (pass the calibration.json written by laps-calibrate)") from None
    version = default_version() if version is None else int(version)
    rollback = sorted({int(v) for v in rollback_from})
    if version <= 0:
        raise BundleError(f"--version {version} is not allowed; bundle versions are integers > 0")
    if rollback and any(v <= version for v in rollback):
        raise BundleError(f"--rollback-from {rollback} must list versions newer than the bundle version {version}")
    dest.mkdir(parents=True, exist_ok=True)
    files = [rel for rel in md.manifest["files"] if rel != CALIBRATION_NAME]
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    cal.write(dest / CALIBRATION_NAME)  # an older file shape ships in the current one
    listing = file_listing(dest, files + [CALIBRATION_NAME])
    now = datetime.now(timezone.utc)
    manifest = dict(md.manifest)
    manifest.update({
        "bundle_id": bundle_id or f"{md.bundle_id or md.metadata.model_version}@{version}",
        "version": version,
        "created": _iso(now),
        "expires": _iso(now + timedelta(days=float(expires_days))),
        "files": listing,
    })
    manifest.pop("rollback_from", None)
    if rollback:
        manifest["rollback_from"] = rollback
    save_manifest(dest, manifest)
    parse_manifest((dest / MANIFEST_NAME).read_bytes())  # what the device will check, checked now
    return dest


def keygen(out_prefix: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """Write an Ed25519 keypair: `<prefix>.key` (PKCS8 PEM, mode 0600) and `<prefix>.pub`
    (base64 of the 32 raw public bytes, one line; what devices list in ota.trusted_keys)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_path, pub_path = Path(f"{out_prefix}.key"), Path(f"{out_prefix}.pub")
    for p in (key_path, pub_path):
        if p.exists() and not overwrite:
            raise BundleError(f"{p} exists; refusing to overwrite a key (pass --force or pick another prefix)")
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if key_path.exists():
        key_path.unlink()
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub_path.write_text(base64.b64encode(raw).decode("ascii") + "\n", encoding="ascii")
    return key_path, pub_path


def sign_bundle(bundle: str | os.PathLike, key_file: str | os.PathLike) -> str:
    """Add (or replace) this key's signature in `<bundle>/manifest.sig`. Returns the key id."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    root = Path(bundle)
    try:
        raw = (root / MANIFEST_NAME).read_bytes()
    except OSError as err:
        raise BundleError(f"{root / MANIFEST_NAME} cannot be read ({err.strerror}); build the bundle first") from None
    parse_manifest(raw, str(root / MANIFEST_NAME))
    try:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise BundleError(f"private key {key_file} cannot be loaded ({err}); use a .key file from "
                          "`laps-export bundle keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"private key {key_file} is not an Ed25519 key; make one with `laps-export bundle keygen`")
    entry = sign_manifest(raw, key)
    sig_path = root / SIGNATURE_NAME
    entries = parse_signatures(sig_path.read_bytes() if sig_path.exists() else None)
    entries = [e for e in entries if e.get("keyid") != entry["keyid"]] + [entry]
    tmp = sig_path.with_name(SIGNATURE_NAME + ".tmp")
    tmp.write_bytes(signatures_bytes(entries))
    os.replace(tmp, sig_path)
    return entry["keyid"]


def verify_bundle(bundle: str | os.PathLike, public_keys: Iterable[str], threshold: int = 1) -> BundleManifest:
    """Verify exactly as a device does (k-of-n signatures, then every file). Returns the manifest."""
    keys = load_trusted_keys(public_keys)
    if not keys:
        raise BundleError("no public key given; pass --key PUB (the .pub files the devices trust)")
    return verify_bundle_directory(bundle, keys, threshold)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")
