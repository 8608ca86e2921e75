"""ImageDataset / ImagePreprocessing / ArrayImageDataset on real generated PNG and JPEG files."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from clss.data.images import ArrayImageDataset, ImageDataset, ImagePreprocessing, ImageReadError


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture
def tree(tmp_path):
    """Files of mixed sizes and modes, as a user's folder holds them."""
    rgb = _rgb(12, 20, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")  # mode L
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    pal = Image.fromarray(rgb).quantize(8)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "pal.png", transparency=0)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.fromarray(_rgb(30, 24, 1)).save(tmp_path / "big.jpg", quality=95)
    Image.fromarray(np.arange(12 * 20, dtype=np.uint16).reshape(12, 20) * 250).save(tmp_path / "g16.png")
    os.makedirs(tmp_path / "sub")
    Image.fromarray(rgb).save(tmp_path / "sub" / "nested.png")
    good = (tmp_path / "big.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "notimage.png").write_bytes(b"this is not an image at all" * 10)
    return tmp_path, rgb


NONE3 = ImagePreprocessing(channels=3, normalize="none")


def test_rgb_png_decodes_exactly_as_chw_float(tree):
    root, rgb = tree
    ds = ImageDataset(root, ["rgb.png", "sub/nested.png"], [1.0, 2.0], NONE3)
    x = ds[0]
    assert x.dtype == torch.float32 and ds.input.shape == (3, 12, 20) == tuple(x.shape)
    np.testing.assert_allclose(x.numpy(), rgb.transpose(2, 0, 1) / 255.0, rtol=0, atol=1e-6)
    assert ds.source(1) == str(root / "sub" / "nested.png")


def test_bgr_order_reverses_the_channels(tree):
    root, _ = tree
    rgb = ImageDataset(root, ["rgb.png"], [0.0], NONE3)[0]
    bgr = ImageDataset(root, ["rgb.png"], [0.0], ImagePreprocessing(order="bgr"))[0]
    torch.testing.assert_close(bgr, rgb.flip(0))


def test_every_mode_becomes_the_documented_channels(tree):
    root, rgb = tree
    files = ["rgb.png", "gray.png", "rgba.png", "pal.png", "cmyk.jpg", "big.jpg", "g16.png"]
    ds3 = ImageDataset(root, files, np.arange(7.0), ImagePreprocessing(resize=(12, 20)))
    ds1 = ImageDataset(root, files, np.arange(7.0), ImagePreprocessing(channels=1, resize=8))
    assert ds1.input.shape == (1, 8, 8)
    for i in range(len(files)):
        assert ds3[i].shape == (3, 12, 20) and ds1[i].shape == (1, 8, 8)
        assert float(ds3[i].min()) >= 0 and float(ds3[i].max()) <= 1
    gray = ds3[1]
    torch.testing.assert_close(gray[0], gray[2])  # a grayscale image repeated on 3 channels
    np.testing.assert_allclose(gray[0].numpy(), rgb[..., 0] / 255.0, atol=1e-6)
    # RGBA: the alpha (7, nearly transparent) is dropped and the stored colours kept.
    np.testing.assert_allclose(ds3[2].numpy(), rgb.transpose(2, 0, 1) / 255.0, atol=1e-6)
    # 16-bit grayscale is scaled by 1/65535, not clipped at 255.
    g16 = np.arange(12 * 20).reshape(12, 20) * 250 / 65535.0
    np.testing.assert_allclose(ds3[6][1].numpy(), g16, atol=1e-5)
    # 1 channel: ITU-R 601-2 luma of the RGB pixels.
    luma = ImageDataset(root, ["rgb.png"], [0.0], ImagePreprocessing(channels=1))[0][0].numpy()
    expect = rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(luma * 255, expect, atol=1.01)


def test_native_size_requires_one_size(tree):
    root, _ = tree
    with pytest.raises(ValueError, match=r"differ in size.*big.jpg is 30x24.*set a resize"):
        ImageDataset(root, ["rgb.png", "big.jpg"], [0.0, 1.0], NONE3)


def test_resize_then_center_crop(tree):
    root, _ = tree
    full = ImageDataset(root, ["big.jpg"], [0.0], NONE3)[0]
    crop = ImageDataset(root, ["big.jpg"], [0.0], ImagePreprocessing(crop=(10, 8)))[0]
    assert crop.shape == (3, 10, 8)
    torch.testing.assert_close(crop, full[:, 10:20, 8:16])
    prep = ImagePreprocessing(resize=(16, 16), crop=12)
    both = ImageDataset(root, ["big.jpg", "rgb.png"], [0.0, 1.0], prep)
    assert both.input.shape == (3, 12, 12) and both[1].shape == (3, 12, 12)


def test_missing_files_counted_and_named_at_construction(tree):
    root, _ = tree
    paths = ["rgb.png", "gone1.png", "gone2.jpg", "sub"]
    with pytest.raises(FileNotFoundError, match=r"3 of 4 image files are missing.*gone1.png.*gone2.jpg.*sub"):
        ImageDataset(root, paths, [0.0] * 4, ImagePreprocessing(resize=8))
    many = [f"x{i}.png" for i in range(9)]
    with pytest.raises(FileNotFoundError, match=r"9 of 9 .*x4.png \.\.\. and 4 more"):
        ImageDataset(root, many, [0.0] * 9, ImagePreprocessing(resize=8))


@pytest.mark.parametrize("bad", ["truncated.jpg", "notimage.png"])
def test_corrupt_bytes_name_the_file(tree, bad):
    root, _ = tree
    ds = ImageDataset(root, ["big.jpg", bad], [0.0, 1.0], ImagePreprocessing(resize=8))
    np.testing.assert_array_equal(ds.targets, [0.0, 1.0])  # targets need no decoding
    assert ds[0].shape == (3, 8, 8)
    with pytest.raises(ImageReadError, match=rf"cannot decode image .*{bad}") as info:
        ds[1]
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unreadable_header_found_at_construction_for_native_size(tree):
    root, _ = tree
    with pytest.raises(ImageReadError, match=r"cannot read image .*notimage.png"):
        ImageDataset(root, ["rgb.png", "notimage.png"], [0.0, 1.0], NONE3)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_permissions_found_at_construction(tree):
    root, _ = tree
    os.chmod(root / "rgb.png", 0)
    with pytest.raises(ValueError, match=r"1 image files cannot be read"):
        ImageDataset(root, ["rgb.png"], [0.0], ImagePreprocessing(resize=8))


def test_imagenet_preset_follows_channel_order():
    rgb, bgr, gray = (ImagePreprocessing(normalize="imagenet", order=o, channels=c)
                      for o, c in (("rgb", 3), ("bgr", 3), ("rgb", 1)))
    assert rgb.mean == (0.485, 0.456, 0.406) and bgr.mean == rgb.mean[::-1] and bgr.std == rgb.std[::-1]
    assert gray.mean == pytest.approx((np.mean(rgb.mean),)) and len(gray.std) == 1
    assert ImagePreprocessing().mean == (0.0, 0.0, 0.0)


def test_normalisation_is_applied(tree):
    root, rgb = tree
    x = ImageDataset(root, ["rgb.png"], [0.0], ImagePreprocessing(normalize="imagenet"))[0]
    expect = (rgb.transpose(2, 0, 1) / 255.0 - np.array([0.485, 0.456, 0.406])[:, None, None]) / np.array(
        [0.229, 0.224, 0.225])[:, None, None]
    np.testing.assert_allclose(x.numpy(), expect, atol=1e-5)


def test_estimated_statistics_are_seeded_and_reused(tree, tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    for i in range(10):
        Image.fromarray(_rgb(6, 6, 10 + i) // (i + 1)).save(root / f"{i}.png")
    paths = [f"{i}.png" for i in range(10)]
    prep = ImagePreprocessing(normalize="estimate", estimate_images=4, estimate_seed=3)
    assert not prep.resolved
    train = ImageDataset(root, paths, np.arange(10.0), prep)
    again = ImageDataset(root, paths, np.arange(10.0), prep)
    assert train.preprocessing.resolved and train.preprocessing == again.preprocessing
    rows = np.sort(np.random.default_rng(3).choice(10, size=4, replace=False))
    imgs = [np.asarray(Image.open(root / f"{i}.png"), dtype=np.float64) / 255 for i in rows]
    p = train.preprocessing
    np.testing.assert_allclose(p.mean, np.mean([im.mean((0, 1)) for im in imgs], 0), rtol=1e-5)
    np.testing.assert_allclose(p.std, np.mean([im.std((0, 1)) for im in imgs], 0), rtol=1e-5)
    other = ImagePreprocessing(normalize="estimate", estimate_images=4, estimate_seed=4)
    assert ImageDataset(root, paths, np.arange(10.0), other).preprocessing.mean != train.preprocessing.mean
    val = ImageDataset(root, paths[:3], [0.0, 1.0, 2.0], train.preprocessing)
    assert val.preprocessing == train.preprocessing


def test_preprocessing_round_trips_through_json():
    p = ImagePreprocessing(channels=3, order="bgr", resize=(224, 200), crop=200, normalize="estimate",
                           mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), estimate_images=64)
    assert ImagePreprocessing.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    assert p.resize == (224, 200) and p.crop == (200, 200)


def test_dataset_pickles_for_loader_workers(tree):
    root, _ = tree
    ds = ImageDataset(root, ["rgb.png", "big.jpg"], [0.0, 1.0], ImagePreprocessing(resize=8),
                      sources=["a", "b"])
    copy = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(copy[1], ds[1])
    assert copy.source(1) == "b"


def test_array_image_dataset_normalises_in_memory_images():
    imgs = np.random.default_rng(0).random((5, 1, 4, 4))
    ds = ArrayImageDataset(imgs, np.arange(5.0), ImagePreprocessing(channels=1, normalize="estimate"))
    assert ds.input.shape == (1, 4, 4) and ds.source(2) == "2"
    mean, std = ds.preprocessing.mean[0], ds.preprocessing.std[0]
    np.testing.assert_allclose(mean, imgs.mean(axis=(1, 2, 3)).mean(), rtol=1e-5)
    np.testing.assert_allclose(ds[3].numpy(), (imgs[3] - mean) / std, rtol=1e-4, atol=1e-6)
    flat = ArrayImageDataset(imgs[:, 0], np.arange(5.0), ImagePreprocessing(channels=1))
    assert flat.input.shape == (1, 4, 4)


def test_a_corrupt_file_read_by_a_loader_worker_is_named_in_one_line(tree):
    root, _ = tree
    ds = ImageDataset(root, ["big.jpg", "truncated.jpg"], [0.0, 1.0], ImagePreprocessing(resize=8))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    with pytest.raises(ImageReadError) as info:
        next(iter(loader))
    message = str(info.value)
    assert message.startswith("cannot decode image ") and "truncated.jpg" in message and "\n" not in message
