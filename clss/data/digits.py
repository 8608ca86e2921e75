"""``digits-rotation``: scikit-learn's handwritten digits, each rotated by a random angle (the target).

The 1797 8x8 images of :func:`sklearn.datasets.load_digits` (values 0-16, scaled to [0, 1]) are each
rotated by an angle drawn uniformly from [-45, 45] degrees with ``numpy.random.default_rng(ANGLE_SEED)``,
using ``scipy.ndimage.rotate(image, angle, reshape=False, order=1, mode="constant", cval=0)`` (bilinear,
the size kept, black outside). The angle in degrees is the target. Everything is built in memory (a few
milliseconds); nothing is written to disk.

Labels are invariant to translations and photometric changes only: a flip or a rotation changes the angle,
so the augmentation views translate (by 1 pixel at most) and change intensities, never rotate or flip.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from clss.data.augment import build_pipelines
from clss.data.dataset import DataSplits
from clss.data.images import ArrayImageDataset, ImagePreprocessing
from clss.data.splits import check_seed
from clss.data.tabular import seeded_split

__all__ = ["ANGLE_RANGE", "ANGLE_SEED", "INVARIANT_TO", "load_digits_rotation", "rotated_digits"]

#: Seed of the angle generator (fixed: the dataset is the same everywhere).
ANGLE_SEED = 0
#: Angles are drawn uniformly from this range, in degrees.
ANGLE_RANGE = (-45.0, 45.0)
#: Geometric ops that keep the target (the angle): translations only.
INVARIANT_TO = ("translate",)
# The digits' pixel values run 0-16.
_DIGITS_MAX = 16.0


def rotated_digits(angle_seed: int = ANGLE_SEED) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 rotated digits and their angles.

    Parameters
    ----------
    angle_seed : int, default :data:`ANGLE_SEED`

    Returns
    -------
    images : np.ndarray
        float32 ``[1797, 8, 8]`` on the [0, 1] scale.
    angles : np.ndarray
        float64 ``[1797]``, degrees in [-45, 45).
    """
    from sklearn.datasets import load_digits

    digits = load_digits().images / _DIGITS_MAX
    rng = np.random.default_rng(check_seed(angle_seed, "angle_seed"))
    angles = rng.uniform(*ANGLE_RANGE, size=len(digits))
    rotated = np.stack([ndimage.rotate(img, a, reshape=False, order=1, mode="constant", cval=0.0)
                        for img, a in zip(digits, angles, strict=True)])
    return np.clip(rotated, 0.0, 1.0).astype(np.float32), angles


def load_digits_rotation(*, seed: int = 0, val_size: float = 0.2, test_size: float = 0.2,
                         angle_seed: int = ANGLE_SEED) -> DataSplits:
    """The ``digits-rotation`` dataset: 1-channel 8x8 inputs, the rotation angle (degrees) as target.

    Split: :func:`~clss.data.tabular.seeded_split` of the 1797 images with ``seed`` (default 0: 1079 train,
    359 val, 359 test rows). Preprocessing: normalised by the mean and std estimated from up to 128
    training images (``normalize="estimate"``, seed 0). Pipelines
    (:func:`~clss.data.augment.build_pipelines`): weak = a random translation of up to 1 pixel; strong =
    that, two photometric ops and cutout.

    Parameters
    ----------
    seed : int, default 0
        Split seed.
    val_size, test_size : float, default 0.2
        Fractions of the images.
    angle_seed : int, default :data:`ANGLE_SEED`
        Seed of the angles (changing it makes another dataset).

    Returns
    -------
    DataSplits
        ``meta`` records the source, seeds, split sizes, preprocessing and augmentation ops.
    """
    images, angles = rotated_digits(angle_seed)
    parts = seeded_split(len(angles), seed=seed, val_size=val_size, test_size=test_size)
    train, val, test = parts
    prep = ImagePreprocessing(channels=1, normalize="estimate")
    train_ds = ArrayImageDataset(images[train], angles[train], prep, sources=[str(i) for i in train])
    prep = train_ds.preprocessing
    val_ds, test_ds = (ArrayImageDataset(images[p], angles[p], prep, sources=[str(i) for i in p])
                       for p in (val, test))
    pipelines = build_pipelines(INVARIANT_TO, prep, train_ds.input.shape)
    meta = {
        "source": "sklearn.datasets.load_digits rotated by scipy.ndimage.rotate (reshape=False, order=1)",
        "angle_seed": angle_seed, "angle_range": list(ANGLE_RANGE), "seed": seed,
        "split": {"val_size": val_size, "test_size": test_size, "rows": [len(p) for p in parts]},
        "preprocessing": prep.to_dict(), "invariant_to": list(INVARIANT_TO),
        "pipelines": {k: list(p.ops) for k, p in pipelines.items()},
    }
    return DataSplits("digits-rotation", train_ds, val_ds, test_ds, "angle", meta, pipelines=pipelines)
