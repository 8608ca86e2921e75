"""Augmentation views: label invariances respected, strong differs from weak, torch-RNG determinism."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from clss.data.augment import (
    GEOMETRIC_OPS,
    PHOTOMETRIC_OPS,
    build_pipelines,
    default_pad,
    strong_pipeline,
    weak_pipeline,
)
from clss.data.images import ImagePreprocessing

PREP3 = ImagePreprocessing(normalize="imagenet")
PREP1 = ImagePreprocessing(channels=1, mean=(0.3,), std=(0.4,))


def _image(c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    prep = PREP3 if c == 3 else PREP1
    return prep.normalise(torch.rand(c, h, w, generator=g))


def test_angle_targets_get_translation_and_photometric_ops_only():
    pipes = build_pipelines(("translate",), PREP1, (1, 8, 8))
    for p in pipes.values():
        assert "hflip" not in p.ops and not set(p.ops) & {"rotate", "vflip", "shear", "scale"}
    assert pipes["weak"].ops == ("translate",) and pipes["weak"].pad == default_pad((8, 8)) == 1
    assert set(pipes["strong"].ops) == {"translate", "cutout"} | (set(PHOTOMETRIC_OPS) - {"saturation"})


def test_age_targets_get_flips_by_default():
    pipes = build_pipelines(("translate", "hflip"), PREP3, (3, 200, 200))
    assert pipes["weak"].ops == ("translate", "hflip") and pipes["weak"].pad == 25
    assert "saturation" in pipes["strong"].ops


@pytest.mark.parametrize(("invariant", "kw", "match"), [
    (("translate",), {"pad": 2, "hflip": True}, r"hflip would change the target.*\['translate'\] only; pass "
                                                r"hflip=False"),
    ((), {"pad": 2}, r"translate would change the target.*no geometric op only; pass pad=0"),
])
def test_forbidden_geometric_ops_are_refused(invariant, kw, match):
    with pytest.raises(ValueError, match=match):
        weak_pipeline(invariant, PREP3, **kw)
    with pytest.raises(ValueError, match=match):
        strong_pipeline(invariant, PREP3, **kw)
    with pytest.raises(ValueError, match=match):
        build_pipelines(invariant, PREP3, (3, 16, 16), **kw)


@pytest.mark.parametrize("op", GEOMETRIC_OPS)
def test_geometric_ops_cannot_enter_the_strong_ops(op):
    with pytest.raises(ValueError, match="are geometric"):
        strong_pipeline(GEOMETRIC_OPS, PREP3, pad=0, ops=("brightness", op))


def test_translation_moves_content_by_at_most_pad_and_never_flips():
    # A single bright pixel: every weak view holds it within `pad` pixels of its place (or crops it out).
    x = torch.zeros(1, 9, 9)
    x[0, 4, 2] = 1.0
    weak = weak_pipeline(("translate",), ImagePreprocessing(channels=1), pad=2)
    torch.manual_seed(0)
    moves = set()
    for _ in range(200):
        v = weak(x)
        (r, c), = torch.nonzero(v[0] > 0.5).tolist()
        assert abs(r - 4) <= 2 and abs(c - 2) <= 2
        moves.add((r - 4, c - 2))
    assert len(moves) == 25  # every offset of the 5x5 range occurs


def test_strong_differs_from_weak_and_from_the_input():
    x = _image()
    pipes = build_pipelines(("translate", "hflip"), PREP3, (3, 16, 16), pad=0, hflip=False)
    torch.manual_seed(0)
    weak = pipes["weak"](x)
    torch.testing.assert_close(weak, x)  # no ops left in the weak view
    diffs = [float((pipes["strong"](x) - x).abs().max()) for _ in range(20)]
    assert sum(d > 1e-3 for d in diffs) >= 15


def test_views_are_deterministic_under_torch_seed_and_use_only_torch_rng():
    x = _image(seed=1)
    pipes = build_pipelines(("translate", "hflip"), PREP3, (3, 16, 16))
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()  # noqa: NPY002
    torch.manual_seed(123)
    a = [pipes[k](x) for k in ("weak", "strong", "strong")]
    torch.manual_seed(123)
    b = [pipes[k](x) for k in ("weak", "strong", "strong")]
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=0)
    assert not torch.equal(a[1], a[2])  # two draws differ
    # numpy's and Python's global generators are never drawn from.
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before  # noqa: NPY002


def test_views_keep_shape_dtype_range_and_input():
    for c in (1, 3):
        x = _image(c, 12, 20)
        before = x.clone()
        prep = PREP3 if c == 3 else PREP1
        pipes = build_pipelines(("translate",), prep, (c, 12, 20))
        torch.manual_seed(0)
        for _ in range(30):
            for p in pipes.values():
                v = p(x)
                assert v.shape == x.shape and v.dtype == torch.float32 and torch.isfinite(v).all()
                raw = prep.denormalise(v)
                assert float(raw.min()) >= -1e-5 and float(raw.max()) <= 1 + 1e-5
        torch.testing.assert_close(x, before, rtol=0, atol=0)


def test_every_photometric_op_runs_on_gray_and_colour():
    for op in PHOTOMETRIC_OPS:
        for c in ((3,) if op == "saturation" else (1, 3)):
            prep = PREP3 if c == 3 else PREP1
            p = strong_pipeline((), prep, pad=0, ops=(op,), num_ops=1, cutout=0.0)
            assert p.ops == (op,)
            v = p(_image(c))
            assert v.shape == (c, 16, 16) and torch.isfinite(v).all()


def test_pipelines_pickle_for_workers():
    p = build_pipelines(("translate",), PREP1, (1, 8, 8))["strong"]
    q = pickle.loads(pickle.dumps(p))
    x = _image(1, 8, 8)
    torch.manual_seed(5)
    a = p(x)
    torch.manual_seed(5)
    torch.testing.assert_close(q(x), a)


@pytest.mark.parametrize("mode", ["zeros", "mean", "reflect"])
def test_the_border_a_translation_shows_follows_pad_mode(mode):
    # A 4x4 gradient image shifted by the largest offset: the new border column is black, the mean colour
    # (normalised zero, as padding a normalised tensor) or the mirror of the image's second column.
    prep = ImagePreprocessing(channels=1, mean=(0.25,), std=(0.5,))
    pixels = torch.linspace(0.1, 0.9, 16).view(1, 4, 4)
    weak = weak_pipeline(("translate",), prep, pad=1, pad_mode=mode)
    x = prep.normalise(pixels)
    torch.manual_seed(0)
    for _ in range(100):
        v = weak(x)
        shown = v * 0.5 + 0.25  # back to pixels
        if torch.allclose(shown[0, 1:, 1:], pixels[0, :3, :3], atol=1e-6):  # shifted down-right by one
            border = shown[0, 1:, 0]
            expect = {"zeros": torch.zeros(3), "mean": torch.full((3,), 0.25),
                      "reflect": pixels[0, :3, 1]}[mode]
            torch.testing.assert_close(border, expect, atol=1e-6, rtol=0)
            return
    pytest.fail("the down-right shift never occurred in 100 draws")


def test_an_unknown_pad_mode_is_refused():
    with pytest.raises(ValueError, match=r"pad_mode must be one of \('zeros', 'mean', 'reflect'\)"):
        weak_pipeline(("translate",), PREP1, pad=1, pad_mode="edge")
