"""`laps-export bundle build|keygen|sign|verify`: signed model bundles for fleet OTA updates."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Make the signed bundles `laps-central rollout` ships to devices.

  keygen  write an Ed25519 keypair: PREFIX.key (private, mode 0600) and PREFIX.pub (what the
          devices list in [ota] trusted_keys)
  build   model directory + calibration.json -> bundle folder with a manifest (monotonic version,
          size and sha256 per file, advisory expiry; --rollback-from marks a signed downgrade)
  sign    add this key's signature to BUNDLE/manifest.sig (run once per key for k-of-n)
  verify  check a bundle exactly as a device does (threshold of trusted signatures, every file)"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="build, sign and verify OTA model bundles", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example:\n  laps-export bundle keygen --out keys/release-1\n"
                              "  laps-export bundle build --model-dir out/model --calibration cal/calibration.json "
                              "--out bundles/42 --version 42\n"
                              "  laps-export bundle sign --bundle bundles/42 --key keys/release-1.key\n"
                              "  laps-export bundle verify --bundle bundles/42 --key keys/release-1.pub")
    verbs = p.add_subparsers(dest="bundle_command", metavar="VERB", required=True)

    b = verbs.add_parser("build", help="build an unsigned bundle from a model directory and a calibration")
    b.add_argument("--model-dir", required=True, help="model directory (manifest.json, tokenizer.onnx, golden/)")
    b.add_argument("--calibration", required=True, help="calibration.json from laps-calibrate (ships with the model)")
    b.add_argument("--out", required=True, help="bundle folder to create (must not exist or be empty)")
    b.add_argument("--version", type=int, help="monotonic bundle version (default: UTC time as YYYYMMDDHHMMSS)")
    b.add_argument("--bundle-id", default="", help="a name for the bundle (default: <model id>@<version>)")
    b.add_argument("--expires-days", type=float, default=365.0,
                   help="advisory expiry in days (devices warn, never refuse; default: %(default)s)")
    b.add_argument("--rollback-from", type=int, action="append", default=[], metavar="VERSION",
                   help="allow devices on VERSION to downgrade to this bundle (repeatable; signed with the manifest)")
    b.set_defaults(func=handle_build)

    k = verbs.add_parser("keygen", help="write an Ed25519 keypair (PREFIX.key 0600, PREFIX.pub)")
    k.add_argument("--out", required=True, metavar="PREFIX", help="path prefix of the two files")
    k.add_argument("--force", action="store_true", help="overwrite existing key files")
    k.set_defaults(func=handle_keygen)

    s = verbs.add_parser("sign", help="add a signature to BUNDLE/manifest.sig")
    s.add_argument("--bundle", required=True, help="bundle folder")
    s.add_argument("--key", required=True, action="append", help="private key file (.key); repeat for several keys")
    s.set_defaults(func=handle_sign)

    v = verbs.add_parser("verify", help="verify a bundle as a device does")
    v.add_argument("--bundle", required=True, help="bundle folder")
    v.add_argument("--key", required=True, action="append", help="trusted public key (.pub file or base64); repeatable")
    v.add_argument("--threshold", type=int, default=1, help="distinct trusted signatures needed (default: %(default)s)")
    v.set_defaults(func=handle_verify)


def handle_build(args: argparse.Namespace) -> int:
    from edge.ota.manifest import parse_manifest
    from export.bundle import build_bundle

    out = build_bundle(args.model_dir, args.calibration, args.out, version=args.version, bundle_id=args.bundle_id,
                       expires_days=args.expires_days, rollback_from=args.rollback_from)
    m = parse_manifest((out / "manifest.json").read_bytes())
    print(f"bundle {out}: version {m.version}, {len(m.files)} files, {m.total_bytes} bytes, "
          f"manifest sha256 {m.sha256}; unsigned: sign it with `laps-export bundle sign`")
    return 0


def handle_keygen(args: argparse.Namespace) -> int:
    from export.bundle import keygen

    key, pub = keygen(args.out, overwrite=args.force)
    print(f"private key {key} (keep it off the devices), public key {pub} (list it in [ota] trusted_keys)")
    return 0


def handle_sign(args: argparse.Namespace) -> int:
    from export.bundle import sign_bundle

    for key in args.key:
        keyid = sign_bundle(args.bundle, key)
        print(f"signed {args.bundle} with key {keyid[:16]}…")
    return 0


def handle_verify(args: argparse.Namespace) -> int:
    from export.bundle import verify_bundle

    m = verify_bundle(args.bundle, args.key, args.threshold)
    note = " (advisory expiry passed)" if m.expired() else ""
    print(f"OK: bundle {args.bundle} version {m.version}, {len(m.files)} files verified, "
          f"manifest sha256 {m.sha256}{note}")
    return 0
