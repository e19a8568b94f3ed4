"""Bundle signatures and hashes, checked by the device code (`edge.ota.manifest`) on real
Ed25519 keys: what passes, what is refused, and why."""

from __future__ import annotations

import pytest

from edge.ota.errors import BundleRejected
from edge.ota.manifest import load_trusted_keys, verify_bundle_directory


def trusted(keys, *names):
    return load_trusted_keys([str(keys[n][1]) for n in names])


def test_a_bundle_signed_by_a_trusted_key_verifies(bundles, keys):
    manifest = verify_bundle_directory(bundles["v2"], trusted(keys, "release"), threshold=1)
    assert manifest.version == 2
    assert "tokenizer.onnx" in manifest.files and "golden/golden.npz" in manifest.files


def test_a_tampered_file_is_refused(bundles, keys):
    with pytest.raises(BundleRejected, match="tokenizer.onnx has sha256 .* tampered"):
        verify_bundle_directory(bundles["v8-tampered-file"], trusted(keys, "release"), threshold=1)


def test_a_tampered_manifest_fails_its_signature(bundles, keys):
    with pytest.raises(BundleRejected, match="0 valid signature.*did not verify"):
        verify_bundle_directory(bundles["v9-tampered-manifest"], trusted(keys, "release"), threshold=1)


def test_a_bundle_signed_by_an_unknown_key_is_refused(bundles, keys):
    with pytest.raises(BundleRejected, match="0 valid signature\\(s\\) by trusted keys, 1 needed"):
        verify_bundle_directory(bundles["v5-stranger"], trusted(keys, "release"), threshold=1)


def test_an_unsigned_bundle_is_refused(bundles, keys):
    with pytest.raises(BundleRejected, match="unsigned"):
        verify_bundle_directory(bundles["v6-unsigned"], trusted(keys, "release"), threshold=1)


def test_a_threshold_of_two_needs_two_distinct_trusted_signatures(bundles, keys):
    two = trusted(keys, "release", "second")
    assert verify_bundle_directory(bundles["v4-two-keys"], two, threshold=2).version == 4
    with pytest.raises(BundleRejected, match="1 valid signature.*2 needed"):
        verify_bundle_directory(bundles["v2"], two, threshold=2)


def test_key_rotation_a_device_trusting_old_and_new_keys_accepts_either(bundles, keys):
    rotating = trusted(keys, "stranger", "release")  # the "stranger" key is the new release key here
    assert verify_bundle_directory(bundles["v5-stranger"], rotating, threshold=1).version == 5
    assert verify_bundle_directory(bundles["v2"], rotating, threshold=1).version == 2


def test_a_signature_of_another_manifest_does_not_transfer(bundles, keys, tmp_path):
    import shutil

    copy = tmp_path / "v3-with-v2-signature"
    shutil.copytree(bundles["v3"], copy)
    shutil.copy(bundles["v2"] / "manifest.sig", copy / "manifest.sig")
    with pytest.raises(BundleRejected, match="did not verify"):
        verify_bundle_directory(copy, trusted(keys, "release"), threshold=1)


def test_export_bundle_cli_verifies_and_refuses_with_one_line_errors(bundles, keys, capsys):
    from export.cli import main

    assert main(["bundle", "verify", "--bundle", str(bundles["v2"]), "--key", str(keys["release"][1])]) == 0
    assert "OK: bundle" in capsys.readouterr().out
    assert main(["bundle", "verify", "--bundle", str(bundles["v6-unsigned"]), "--key", str(keys["release"][1])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the bundle is unsigned") and "\n" not in err


def test_keygen_writes_a_private_key_only_its_owner_can_read(keys):
    private, public = keys["release"]
    assert private.stat().st_mode & 0o777 == 0o600
    assert len(public.read_text().strip()) == 44  # base64 of 32 raw bytes
