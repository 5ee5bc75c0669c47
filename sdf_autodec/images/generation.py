"""Generalisation and generation: what each model does with images and codes it was not trained on.

- **Out of distribution.** Models trained on the digits 0-4 only meet the test digits 0-4 (in
  distribution), the test digits 5-9 (new classes) and scikit-learn's bundled 8 x 8 digits
  (:func:`load_sklearn_digits`: another scanner, another resolution, upscaled: a shifted domain). The
  AE encodes and decodes them; the AD fits a code with its decoder frozen. The reconstruction MSE on
  each set says how far each model's reach extends.
- **Novel images.** Codes drawn from a Gaussian fitted to the training codes (:func:`gaussian_samples`;
  AE: the training images' encodings, AD: its learned codes) are decoded and measured
  (:func:`sample_scores`): the fixed classifier's confidence and how many digits appear, and each
  sample's distance to its nearest training image (a memorisation check; the real test images'
  distance is the reference: a sample much nearer than that is a copy).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sdf_autodec.images.baselines import nearest_on_visible
from sdf_autodec.images.classifier import predict
from sdf_autodec.images.data import ImageSet


def load_sklearn_digits(size: int = 32, digit_size: int = 20) -> ImageSet:
    """scikit-learn's 1,797 bundled 8 x 8 digits (``sklearn.datasets.load_digits``, values 0-16) as
    ``(N, 1, size, size)`` images in [0, 1]: upscaled bilinearly to ``digit_size`` (MNIST's digits fill
    a 20 x 20 box) and centred on a black border, as MNIST centres its digits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    big = nn.functional.interpolate(small, size=(digit_size, digit_size), mode="bilinear", align_corners=False).clamp(0, 1)
    out = torch.zeros(len(big), 1, size, size)
    start = (size - digit_size) // 2
    out[..., start : start + digit_size, start : start + digit_size] = big
    return ImageSet(out, torch.from_numpy(bunch.target.astype(np.int64)), torch.arange(len(big)))


def gaussian_samples(codes: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``(count, D)`` draws from the Gaussian (mean, full covariance) fitted to ``codes: (N, D)``."""
    x = codes.detach().double()
    mean = x.mean(0)
    cov = torch.cov(x.T).reshape(x.shape[1], x.shape[1]) + 1e-6 * torch.eye(x.shape[1], dtype=x.dtype)
    factor = torch.linalg.cholesky(cov)
    eps = torch.randn(count, x.shape[1], generator=generator, dtype=x.dtype)
    return (mean + eps @ factor.T).float()


def nearest_mse(images: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """``(N,)``: each image's per-pixel MSE to its nearest image of ``bank: (M, C, S, S)`` (images
    clamped to [0, 1] first); the nearest is :func:`~sdf_autodec.images.baselines.nearest_on_visible`
    with every pixel visible."""
    x = images.clamp(0, 1)
    index = nearest_on_visible(x, torch.ones(1, 1, *x.shape[2:]), bank)
    return (x - bank[index]).pow(2).flatten(1).mean(1)


def sample_scores(images: torch.Tensor, classifier: nn.Module, bank: torch.Tensor) -> dict:
    """The classifier's view of ``images: (N, C, S, S)`` and their distance to the training images ``bank``:
    ``confidence_mean`` (mean top probability), ``classes_seen`` (digits that are the top label of at
    least 1% of the images), ``class_share`` (fraction labelled as each digit), ``nearest_train_mse_median``."""
    probs = predict(classifier, images)
    top = probs.argmax(1)
    share = torch.bincount(top, minlength=10).float() / len(images)
    return {
        "confidence_mean": probs.max(1).values.mean().item(),
        "classes_seen": int((share >= 0.01).sum().item()),
        "class_share": [round(v, 4) for v in share.tolist()],
        "nearest_train_mse_median": nearest_mse(images, bank).median().item(),
    }
