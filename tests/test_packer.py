"""convert.packer and convert.signing: pack layout, determinism, signatures."""

from __future__ import annotations

import json
import os
import stat
import tarfile

import numpy as np
import pytest
from factories import tiny_card, tiny_tflite

from convert import signing
from convert.packer import PackError, decode_png, write_pack
from device.core.vocab import MODEL_SIGNS, Sign
from device.grading.interpreter import GradeModel
from device.packs.manifest import (
    GOLDEN_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAME,
    GoldenSet,
    PackManifest,
)


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    return signing.keygen(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """One tiny int8 model file per sign (different seeds), with cards."""
    root = tmp_path_factory.mktemp("tiny_models")
    out = {}
    for i, sign in enumerate(MODEL_SIGNS):
        path = tiny_tflite(root / f"{sign.value}.tflite", size=32, seed=i)
        out[sign] = (path, tiny_card(sign, path))
    return out


def _members(pack):
    with tarfile.open(pack) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}, tar.getnames()


# --- signing: fast, no TensorFlow ------------------------------------------------------------


def _verifies(data: bytes, signature: bytes, public_key_path) -> bool:
    """Checked as the device checks a pack's manifest.sig (its key loader, Ed25519 verify)."""
    from cryptography.exceptions import InvalidSignature

    from device.packs.check import load_public_key

    try:
        load_public_key(public_key_path).verify(signature, data)
    except InvalidSignature:
        return False
    return True


def test_keygen_writes_private_key_0600_and_signs(tmp_path):
    priv, pub = signing.keygen(tmp_path)
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    assert b"PRIVATE KEY" in priv.read_bytes() and b"PUBLIC KEY" in pub.read_bytes()
    sig = signing.sign_bytes(b"hello", priv)
    assert len(sig) == 64
    assert _verifies(b"hello", sig, pub)
    assert not _verifies(b"hellp", sig, pub)
    other_priv, _ = signing.keygen(tmp_path / "other")
    assert not _verifies(b"hello", signing.sign_bytes(b"hello", other_priv), pub)


def test_keygen_refuses_to_overwrite(tmp_path):
    signing.keygen(tmp_path)
    with pytest.raises(signing.SigningKeyError, match="already exists"):
        signing.keygen(tmp_path)


def test_key_loading_errors_name_the_file(tmp_path):
    priv, pub = signing.keygen(tmp_path)
    with pytest.raises(signing.SigningKeyError, match="nope.pem: private signing key not found"):
        signing.load_private_key(tmp_path / "nope.pem")
    with pytest.raises(signing.SigningKeyError, match="PRIVATE key"):
        signing.load_public_key(priv)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(signing.SigningKeyError, match="junk.pem"):
        signing.load_private_key(junk)
    assert signing.load_public_key(pub) is not None


# --- packs: need tiny TFLite models (TensorFlow) ---------------------------------------------


@pytest.mark.slow
def test_pack_layout_manifest_and_golden(tiny_models, keys, tmp_path):
    rng = np.random.default_rng(0)
    golden = {Sign.ERYTHEMA: [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(8)]}
    pack = write_pack(tiny_models, tmp_path / "p.pack", pack_version="1.2.3",
                      golden_images=golden, sign_key=keys[0], min_device_version="0.1.0")
    files, order = _members(pack)
    assert order[0] == MANIFEST_NAME and order[1] == SIGNATURE_NAME
    manifest = PackManifest.model_validate_json(files[MANIFEST_NAME])
    assert manifest.pack_version == "1.2.3" and manifest.min_device_version == "0.1.0"
    assert set(manifest.models) == set(MODEL_SIGNS)
    # every file but the manifest and signature is listed with its real sha256
    import hashlib

    listed = set(files) - {MANIFEST_NAME, SIGNATURE_NAME}
    assert set(manifest.files) == listed
    for name, digest in manifest.files.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest
    assert _verifies(files[MANIFEST_NAME], files[SIGNATURE_NAME], keys[1])
    # golden: 8 per sign, given images stored losslessly, outputs reproduce through GradeModel
    gold = GoldenSet.model_validate_json(files[GOLDEN_NAME])
    for sign in MODEL_SIGNS:
        assert len(gold.cases[sign]) == 8
        model = GradeModel(tiny_models[sign][0])
        for k, case in enumerate(gold.cases[sign]):
            assert case.image == f"golden/{sign.value}/{k}.png"
            image = decode_png(files[case.image])
            assert image.shape == (32, 32, 3)
            if sign is Sign.ERYTHEMA:
                assert np.array_equal(image, golden[sign][k])
            probs = model.predict(image)
            assert np.allclose(probs, case.probs, atol=1e-5)
            assert case.grade == int(np.argmax(probs))


@pytest.mark.slow
def test_pack_is_deterministic_and_atomic(tiny_models, tmp_path):
    a = write_pack(tiny_models, tmp_path / "a.pack", pack_version="1.0.0")
    b = write_pack(tiny_models, tmp_path / "b.pack", pack_version="1.0.0")
    fa, order_a = _members(a)
    fb, order_b = _members(b)
    assert order_a == order_b
    assert SIGNATURE_NAME not in fa
    assert {k: v for k, v in fa.items() if k != MANIFEST_NAME} == {
        k: v for k, v in fb.items() if k != MANIFEST_NAME}
    assert json.loads(fa[MANIFEST_NAME])["files"] == json.loads(fb[MANIFEST_NAME])["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pack", "b.pack"]  # no temp files left


@pytest.mark.slow
def test_pack_refuses_mismatched_card_and_wrong_golden_size(tiny_models, tmp_path):
    path, card = tiny_models[Sign.ERYTHEMA]
    bad = dict(tiny_models)
    bad[Sign.EXCORIATION] = (path, card)  # erythema's card given for excoriation
    with pytest.raises(PackError, match="grades erythema"):
        write_pack(bad, tmp_path / "x.pack", pack_version="1.0.0")
    stale = dict(tiny_models)
    stale[Sign.ERYTHEMA] = (tiny_models[Sign.EXCORIATION][0], card)  # card of another file
    with pytest.raises(PackError, match="does not match its card"):
        write_pack(stale, tmp_path / "x.pack", pack_version="1.0.0")
    with pytest.raises(PackError, match="needs uint8"):
        write_pack(tiny_models, tmp_path / "x.pack", pack_version="1.0.0",
                   golden_images={Sign.ERYTHEMA: [np.zeros((16, 16, 3), np.uint8)]})
    assert not list(tmp_path.iterdir())


def test_sources_from_sweep_reads_trainer_best_json(tmp_path):
    from convert.cli.pack import sources_from_sweep
    from device.core.cliutil import UserError

    best = {"metric": "accuracy", "synthetic": True, "note": "synthetic",
            "signs": {"erythema": {"backbone": "vgg16", "accuracy": 0.9,
                                   "rundir": str(tmp_path / "erythema" / "vgg16")},
                      "excoriation": {"backbone": "resnet50_v2", "rundir": "excoriation/resnet50_v2"}}}
    (tmp_path / "best.json").write_text(json.dumps(best))
    got = sources_from_sweep(tmp_path)
    assert got == {Sign.ERYTHEMA: tmp_path / "erythema" / "vgg16",
                   Sign.EXCORIATION: tmp_path / "excoriation" / "resnet50_v2"}
    with pytest.raises(UserError, match="best.json: not found"):
        sources_from_sweep(tmp_path / "nowhere")
