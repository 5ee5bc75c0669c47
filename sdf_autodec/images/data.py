"""MNIST from its four IDX files: padded to 32 x 32, split into seeded train / validation / test subsets.

Pixels become float32 in [0, 1]; each 28 x 28 digit gets a 2-pixel black border (32 = 4 · 2³, what
three stride-2 stages from a 4 x 4 bottleneck give). The training and validation subsets are
disjoint draws from the 60000 training images, the test subset a draw from the 10000 test images;
all three are fixed by ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sdf_autodec.core.seeding import torch_generator
from sdf_autodec.images.idx import IMAGES_MAGIC, LABELS_MAGIC, IdxError, read_idx

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass
class DataConfig:
    """Which MNIST images the study uses."""

    train_size: int = 10_000
    """Training images (both models train on the same ones)."""
    val_size: int = 1_000
    """Held-out training-file images for the validation curves."""
    test_size: int = 1_000
    """Test-file images for the experiments."""
    image_size: int = 32
    """Side after zero padding (the 28 x 28 digit is centred); the networks' ``image_size``."""


@dataclass
class ImageSet:
    """``images: (N, 1, S, S)`` float32 in [0, 1]; ``labels: (N,)`` int64 digits; ``index``: rows in the source file."""

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor

    def __len__(self) -> int:
        return self.images.shape[0]


@dataclass
class MnistSplits:
    train: ImageSet
    val: ImageSet
    test: ImageSet


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (data_dir / name).is_file():
            return data_dir / name
    raise FileNotFoundError(f"{data_dir / (stem + '.gz')}: MNIST file not found (nor {stem} uncompressed)")


def load_mnist(data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images: (N, 28, 28) uint8, labels: (N,) uint8)`` of ``split`` (``train`` or ``test``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: MNIST data directory not found (point data_dir= at the folder of the IDX files)")
    image_path, label_path = (_find(data_dir, stem) for stem in FILES[split])
    images = read_idx(image_path, IMAGES_MAGIC)
    labels = read_idx(label_path, LABELS_MAGIC)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IdxError(f"{image_path}: expected N x rows x cols unsigned bytes, got shape {images.shape} of {images.dtype}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise IdxError(f"{label_path}: expected N unsigned bytes, got shape {labels.shape} of {labels.dtype}")
    if len(images) != len(labels):
        raise IdxError(f"{label_path}: {len(labels)} labels for the {len(images)} images of {image_path.name} (wrong count)")
    if labels.size and labels.max() > 9:
        raise IdxError(f"{label_path}: label {int(labels.max())} is not a digit")
    return images, labels


def pad_images(images: np.ndarray, size: int = 32) -> torch.Tensor:
    """``(N, h, w)`` uint8 → ``(N, 1, size, size)`` float32 in [0, 1], the image centred on a black border."""
    n, h, w = images.shape
    if h > size or w > size:
        raise ValueError(f"images of {h} x {w} do not fit in {size} x {size}")
    out = torch.zeros(n, 1, size, size)
    top, left = (size - h) // 2, (size - w) // 2
    out[:, 0, top : top + h, left : left + w] = torch.from_numpy(images.astype(np.float32) / 255.0)
    return out


def _subset(images: np.ndarray, labels: np.ndarray, index: torch.Tensor, size: int) -> ImageSet:
    idx = index.numpy()
    return ImageSet(pad_images(images[idx], size), torch.from_numpy(labels[idx].astype(np.int64)), index.clone())


def load_splits(data_dir: str | Path, cfg: DataConfig, seed: int = 0) -> MnistSplits:
    """The study's three subsets (see module docstring) from the IDX files in ``data_dir``, drawn by ``seed``."""
    train_images, train_labels = load_mnist(data_dir, "train")
    test_images, test_labels = load_mnist(data_dir, "test")
    if cfg.train_size < 1 or cfg.val_size < 1 or cfg.test_size < 1:
        raise ValueError(f"train_size, val_size and test_size must be >= 1, got {cfg.train_size}, {cfg.val_size}, {cfg.test_size}")
    if cfg.train_size + cfg.val_size > len(train_images):
        raise ValueError(f"train_size + val_size = {cfg.train_size + cfg.val_size} exceeds the {len(train_images)} training images")
    if cfg.test_size > len(test_images):
        raise ValueError(f"test_size = {cfg.test_size} exceeds the {len(test_images)} test images")
    order = torch.randperm(len(train_images), generator=torch_generator(seed, "mnist-train-val"))
    test_order = torch.randperm(len(test_images), generator=torch_generator(seed, "mnist-test"))
    return MnistSplits(
        train=_subset(train_images, train_labels, order[: cfg.train_size], cfg.image_size),
        val=_subset(train_images, train_labels, order[cfg.train_size : cfg.train_size + cfg.val_size], cfg.image_size),
        test=_subset(test_images, test_labels, test_order[: cfg.test_size], cfg.image_size),
    )


def load_split(data_dir: str | Path, split: str, size: int = 32, count: int = 0, seed: int = 0) -> ImageSet:
    """All images of MNIST's ``split`` (``train`` or ``test``), or ``count`` of them drawn by ``seed``
    (0: all), padded to ``size``: what the digit classifier learns from."""
    images, labels = load_mnist(data_dir, split)
    if count < 0 or count > len(images):
        raise ValueError(f"{count} images asked of the {len(images)} {split} images")
    index = torch.arange(len(images)) if count == 0 else torch.randperm(len(images), generator=torch_generator(seed, "mnist-full", split))[:count]
    return _subset(images, labels, index, size)
