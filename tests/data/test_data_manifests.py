"""data_manifests/*.yaml: well formed, and the operator-sde manifest matches the published files."""

import hashlib
from pathlib import Path

import numpy as np
import yaml

from clss.data.manifest import load_manifest
from clss.data.operator_sde import generate_split, paper_run_indices

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "operator_sde"
REQUIRED = {"name", "version", "source", "citation", "files", "protocol", "reference_results"}


def manifests():
    return {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "data_manifests").glob("*.yaml"))}


def test_every_manifest_has_the_required_fields():
    found = manifests()
    assert "operator_sde" in found
    for name, m in found.items():
        assert set(m) >= REQUIRED, (name, REQUIRED - set(m))
        for f in m["files"]:
            # arrays: the layout of .npz files; image datasets list index files (sha256 null: not verified)
            assert f["sha256"] is None or len(f["sha256"]) == 64, (name, f["path"])
            assert f.get("arrays") or not f["path"].endswith(".npz"), (name, f["path"])
        load_manifest(ROOT / "data_manifests" / f"{name}.yaml")  # the validated schema


def test_operator_sde_manifest_describes_the_files():
    """Checksums and shapes against the published files when they are beside the checkout (CI); without
    them, the declared layout against the generator's output (same keys, columns and dtypes)."""
    m = manifests()["operator_sde"]
    for f in m["files"]:
        path = SHARED / f["path"]
        if path.exists():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"], f["path"]
            with np.load(path) as arrays:
                found = {k: (arrays[k].shape, str(arrays[k].dtype)) for k in arrays.files}
            expected = {k: (tuple(shape), dtype) for k, (shape, dtype) in f["arrays"].items()}
        else:
            split = "train" if "train" in f["path"] else "test"
            arrays = generate_split(2, seed=0, split=split, mc_samples=50, progress=False)
            # the generator also records per-function metadata (length scales) beside the published arrays
            found = {k: (arrays[k].shape[1:], str(arrays[k].dtype)) for k in f["arrays"] if k in arrays}
            expected = {k: (tuple(shape)[1:], dtype) for k, (shape, dtype) in f["arrays"].items()}
        assert found == expected, f["path"]


def test_operator_sde_manifest_protocol_matches_the_loader():
    m = manifests()["operator_sde"]
    for fraction in m["protocol"]["fractions"]:
        labeled, unlabeled = paper_run_indices(0, fraction)
        assert len(labeled) == len(unlabeled) == int(1000 * fraction)
    assert len(m["reference_results"]["values"]["gclss"]) == len(m["protocol"]["fractions"])
