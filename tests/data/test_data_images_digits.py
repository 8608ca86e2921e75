"""digits-rotation: angles, determinism, split, preprocessing and label-preserving views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.datasets import load_digits

from clss.config import PRESETS, TrainConfig, merge_dicts
from clss.data import DATASETS
from clss.data.digits import ANGLE_SEED, INVARIANT_TO, load_digits_rotation, rotated_digits


@pytest.fixture(scope="module")
def splits():
    return load_digits_rotation()


def test_images_are_the_digits_rotated_by_the_target_angle():
    images, angles = rotated_digits()
    digits = load_digits().images / 16.0
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32 and angles.shape == (1797,)
    expect = np.random.default_rng(ANGLE_SEED).uniform(-45, 45, size=1797)
    np.testing.assert_array_equal(angles, expect)
    assert -45 <= angles.min() < -44 and 44 < angles.max() < 45
    for i in (0, 5, 1796):
        direct = ndimage.rotate(digits[i], angles[i], reshape=False, order=1, mode="constant", cval=0.0)
        np.testing.assert_allclose(images[i], np.clip(direct, 0, 1), atol=1e-6)
    # Rotating back by -angle restores the interior better than rotating further (the sign is right).
    big = np.flatnonzero(np.abs(angles) > 20)

    def error(i: int, angle: float) -> float:
        turned = ndimage.rotate(images[i], angle, reshape=False, order=1)
        return float(np.abs(turned - digits[i])[2:6, 2:6].mean())

    back = [error(i, -angles[i]) for i in big]
    further = [error(i, angles[i]) for i in big]
    assert np.mean(np.less(back, further)) > 0.95
    assert np.median(back) < 0.5 * np.median(further)


def test_dataset_is_deterministic_and_split_60_20_20(splits):
    again = load_digits_rotation()
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1079, 359, 359)
    for a, b in ((splits.train, again.train), (splits.test, again.test)):
        np.testing.assert_array_equal(a.targets, b.targets)
        torch.testing.assert_close(a[7], b[7], rtol=0, atol=0)
    rows = [int(ds.source(i)) for ds in (splits.train, splits.val, splits.test) for i in range(len(ds))]
    assert sorted(rows) == list(range(1797))  # the three splits partition the images
    _, angles = rotated_digits()
    np.testing.assert_array_equal(splits.test.targets, angles[[int(splits.test.source(i)) for i in
                                                                range(len(splits.test))]])
    other = load_digits_rotation(seed=1)
    assert not np.array_equal(other.test.targets, splits.test.targets)


def test_inputs_are_normalised_one_channel_8x8(splits):
    assert splits.input.kind == "image" and splits.input.shape == (1, 8, 8)
    x = torch.stack([splits.train[i] for i in range(len(splits.train))])
    assert x.dtype == torch.float32
    prep = splits.train.preprocessing
    assert prep.normalize == "estimate" and prep.resolved and splits.meta["preprocessing"] == prep.to_dict()
    assert abs(float(x.mean())) < 0.1 and 0.85 < float(x.std()) < 1.15  # estimated on 128 of them
    assert splits.val.preprocessing == prep == splits.test.preprocessing
    assert splits.target_name == "angle" and splits.labeled is None


def test_views_never_rotate_or_flip(splits):
    assert INVARIANT_TO == ("translate",)
    assert set(splits.pipelines) == {"weak", "strong"}
    for p in splits.pipelines.values():
        assert "hflip" not in p.ops and p.pad == 1
    assert splits.pipelines["weak"].ops == ("translate",)
    assert splits.meta["pipelines"]["strong"] == list(splits.pipelines["strong"].ops)
    x = splits.train[0]
    torch.manual_seed(0)
    weak, strong = splits.pipelines["weak"](x), splits.pipelines["strong"](x)
    assert weak.shape == strong.shape == (1, 8, 8) and not torch.equal(weak, strong)


def test_registered_with_a_cnn_preset():
    assert DATASETS["digits-rotation"].loader is load_digits_rotation
    preset = PRESETS["digits-rotation"]
    model = merge_dicts(TrainConfig().to_dict(), preset)["model"]
    assert model == {"name": "cnn", "channels": 32, "blocks": 2, "dropout": 0.1}  # no MLP keys carried over
    assert preset["standardize"] == "y" and preset["steps"] * preset["batch_size"] <= 20000
