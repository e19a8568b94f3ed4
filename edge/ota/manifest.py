"""The signed bundle manifest: TUF-like fields, Ed25519 signatures, a k-of-n trust check.

A bundle is a model directory (docs/formats.md#model-bundle) whose `manifest.json` carries, besides
the model metadata:

    schema      "laps.bundle-manifest/1" (the model-directory schema; an installed bundle IS a
                model directory, `edge.model.load_model_directory` reads it)
    bundle_id   a name; version: the monotonic bundle version (int, > 0)
    created     ISO-8601 UTC; expires: ISO-8601 UTC, ADVISORY (an expired bundle is installed
                with a warning in the status: a fleet that cannot reach its signers must not brick)
    files       {relpath: {"sha256": hex, "size": bytes}} (TUF's length + hashes)
    rollback_from  optional list of versions: this bundle may REPLACE one of those versions even
                though its own version is lower (the signed rollback marker; without it a
                downgrade is refused)

`manifest.sig` holds any number of signatures over the exact bytes of `manifest.json`:

    {"schema": "laps.bundle-signatures/1",
     "signatures": [{"keyid": sha256(raw public key) hex, "sig": base64 Ed25519 signature}, ...]}

Each signature covers `SIGNING_CONTEXT + manifest bytes`, so a signature made for something
else with the same key can never pass as a bundle signature. A device trusts a set of public
keys and a threshold k: at least k DISTINCT trusted keys must have signed. Rotating a key is
"add the new key to the devices, sign with both, later drop the old one" and never bricks.

Device-side verification lives here because `edge` may not import `export`; `laps-export bundle
verify` calls the same functions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from edge.errors import ModelError
from edge.model.directory import MANIFEST_NAME, SIGNATURE_NAME
from edge.model.directory import parse_manifest as parse_model_manifest
from edge.ota.errors import BundleRejected

SIGNATURES_SCHEMA = "laps.bundle-signatures/1"
#: domain separation: what an Ed25519 signature over a bundle manifest actually signs
SIGNING_CONTEXT = b"laps.bundle-manifest/1 signature\n"


@dataclass(frozen=True)
class BundleManifest:
    """A parsed, structurally checked bundle manifest.

    raw: the exact manifest.json bytes (what signatures and the desired message's hash cover).
    version: the monotonic bundle version. files: {relpath: (sha256 hex, size bytes)}.
    expires: datetime or None. rollback_from: versions this bundle may replace by a downgrade.
    """

    raw: bytes
    data: dict
    version: int
    bundle_id: str
    files: dict[str, tuple[str, int]]
    expires: datetime | None
    rollback_from: tuple[int, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files.values())

    def expired(self, now: datetime | None = None) -> bool:
        now = now or datetime.now(timezone.utc)
        return self.expires is not None and now > self.expires


@dataclass(frozen=True)
class TrustedKey:
    """One trusted Ed25519 public key. keyid: sha256 of its 32 raw bytes (hex)."""

    keyid: str
    raw: bytes
    origin: str = ""


def parse_manifest(raw: bytes, where: str = MANIFEST_NAME) -> BundleManifest:
    """Parse manifest bytes into a `BundleManifest`; anything malformed is `BundleRejected`."""
    try:
        data = parse_model_manifest(raw, where, fix="the bundle is corrupt, rebuild it")
    except ModelError as err:
        raise BundleRejected(str(err)) from None
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version <= 0:
        raise BundleRejected(f"{where} has version {version!r}; a bundle needs an integer version > 0")
    if SIGNATURE_NAME in data["files"]:
        raise BundleRejected(f"{where} lists {SIGNATURE_NAME!r}, which is not a plain path inside the bundle; rebuild it")
    files = {rel: (entry["sha256"].lower(), entry["size"]) for rel, entry in data["files"].items()}
    expires = None
    if data.get("expires"):
        try:
            expires = datetime.fromisoformat(str(data["expires"]).replace("Z", "+00:00"))
        except ValueError:
            raise BundleRejected(f"{where} has expires {data['expires']!r}, not ISO-8601; rebuild the bundle") from None
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
    rollback = data.get("rollback_from", [])
    if not isinstance(rollback, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in rollback):
        raise BundleRejected(f"{where} has rollback_from {rollback!r}; expected a list of versions")
    return BundleManifest(raw=raw, data=data, version=version, bundle_id=str(data.get("bundle_id", "")),
                          files=files, expires=expires, rollback_from=tuple(rollback))


# -- keys ------------------------------------------------------------------------------------------
def keyid_of(raw_public: bytes) -> str:
    """The id of a public key: sha256 of its 32 raw bytes, hex."""
    return hashlib.sha256(raw_public).hexdigest()


def load_public_key(spec: str) -> TrustedKey:
    """A trusted key from a file path (base64 raw key or PEM) or an inline base64 string."""
    text = spec.strip()
    origin = text
    if os.path.exists(text):
        data = Path(text).read_bytes()
        if b"BEGIN PUBLIC KEY" in data:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            key = serialization.load_pem_public_key(data)
            if not isinstance(key, Ed25519PublicKey):
                raise BundleRejected(f"trusted key {text} is not an Ed25519 key; make one with `laps-export bundle keygen`")
            raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return TrustedKey(keyid_of(raw), raw, origin)
        text = data.decode("ascii", "replace").strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise BundleRejected(
            f"trusted key {origin[:60]!r} is neither a readable key file nor a base64 Ed25519 public key "
            "(32 bytes); use the .pub file written by `laps-export bundle keygen`"
        )
    return TrustedKey(keyid_of(raw), raw, origin)


def load_trusted_keys(specs: Iterable[str]) -> list[TrustedKey]:
    """Every configured key, de-duplicated by key id."""
    out: dict[str, TrustedKey] = {}
    for spec in specs:
        key = load_public_key(spec)
        out.setdefault(key.keyid, key)
    return list(out.values())


# -- signatures ------------------------------------------------------------------------------------
def parse_signatures(raw: bytes | None, where: str = SIGNATURE_NAME) -> list[dict]:
    """The signature entries of a manifest.sig ([] for a missing file)."""
    if not raw:
        return []
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleRejected(f"{where} is not JSON ({err}); re-sign the bundle") from None
    if not isinstance(data, dict) or data.get("schema") != SIGNATURES_SCHEMA or not isinstance(data.get("signatures"), list):
        raise BundleRejected(f"{where} is not a {SIGNATURES_SCHEMA} document; re-sign the bundle")
    return [s for s in data["signatures"] if isinstance(s, dict)]


def signatures_bytes(entries: list[dict]) -> bytes:
    return (json.dumps({"schema": SIGNATURES_SCHEMA, "signatures": entries}, indent=1, sort_keys=True) + "\n").encode()


def verify_signatures(manifest_raw: bytes, signatures_raw: bytes | None, trusted: list[TrustedKey],
                      threshold: int) -> list[str]:
    """Check that at least `threshold` distinct trusted keys signed `manifest_raw`.

    Returns the key ids whose signatures verified; raises `BundleRejected` naming how many
    valid trusted signatures were found and how many are needed. Signatures by unknown keys
    are ignored (a bundle may carry the signature of a key this device no longer trusts).
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if threshold < 1:
        raise BundleRejected(f"signature threshold {threshold} is not allowed; it must be >= 1")
    entries = parse_signatures(signatures_raw)
    if not entries:
        raise BundleRejected(f"the bundle is unsigned (no {SIGNATURE_NAME}); sign it with `laps-export bundle sign`")
    by_id = {k.keyid: k for k in trusted}
    good: list[str] = []
    bad = 0
    for entry in entries:
        key = by_id.get(str(entry.get("keyid", "")))
        if key is None or key.keyid in good:
            continue
        try:
            sig = base64.b64decode(str(entry.get("sig", "")), validate=True)
            Ed25519PublicKey.from_public_bytes(key.raw).verify(sig, SIGNING_CONTEXT + manifest_raw)
        except (InvalidSignature, binascii.Error, ValueError):
            bad += 1
            continue
        good.append(key.keyid)
    if len(good) < threshold:
        detail = f"; {bad} signature(s) by trusted keys did not verify (tampered manifest?)" if bad else ""
        raise BundleRejected(
            f"bundle manifest has {len(good)} valid signature(s) by trusted keys, {threshold} needed "
            f"({len(entries)} signature(s) present, {len(trusted)} key(s) trusted){detail}; sign it with "
            "enough trusted keys or fix ota.trusted_keys"
        )
    return good


def sign_manifest(manifest_raw: bytes, private_key) -> dict:
    """One signature entry for `manifest_raw` with an Ed25519 private key object."""
    from cryptography.hazmat.primitives import serialization

    raw_pub = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = private_key.sign(SIGNING_CONTEXT + manifest_raw)
    return {"keyid": keyid_of(raw_pub), "sig": base64.b64encode(sig).decode("ascii")}


def verify_bundle_directory(path: str | os.PathLike, trusted: list[TrustedKey], threshold: int) -> BundleManifest:
    """Verify a bundle on disk: signatures (k of n), then every file's size and sha256.

    Returns the manifest; raises `BundleRejected` (one line) on the first problem.
    """
    root = Path(path)
    try:
        raw = (root / MANIFEST_NAME).read_bytes()
    except OSError as err:
        raise BundleRejected(f"{root / MANIFEST_NAME} cannot be read ({err.strerror}); is {root} a bundle?") from None
    sig_path = root / SIGNATURE_NAME
    sig_raw = sig_path.read_bytes() if sig_path.is_file() else None
    verify_signatures(raw, sig_raw, trusted, threshold)
    manifest = parse_manifest(raw, str(root / MANIFEST_NAME))
    verify_files(root, manifest)
    return manifest


def verify_files(root: Path, manifest: BundleManifest) -> None:
    """Every listed file exists with the listed size and sha256 (`BundleRejected` otherwise)."""
    from edge.model.directory import sha256_file

    for rel, (digest, size) in manifest.files.items():
        target = root / rel
        if not target.is_file():
            raise BundleRejected(f"bundle file {rel} is missing from {root}; re-download or rebuild the bundle")
        actual = target.stat().st_size
        if actual != size:
            raise BundleRejected(f"bundle file {rel} is {actual} bytes, the signed manifest says {size}; it was changed")
        got = sha256_file(target)
        if got != digest:
            raise BundleRejected(
                f"bundle file {rel} has sha256 {got[:12]}…, the signed manifest says {digest[:12]}…; it was tampered with"
            )
