"""Reconstruction error of images: MSE and PSNR on the hidden pixels and on the whole image.

Predictions are clamped to the pixel range [0, 1] first (the decoders end linearly). MSE is the mean
over images of each image's mean squared error over the region; PSNR is ``10 log10(1 / MSE)`` of
that mean MSE (peak 1), so that it is finite even for an image reconstructed exactly.
"""

from __future__ import annotations

import math

import torch


def psnr(mse: float) -> float:
    """``10 log10(1 / mse)`` in dB (peak value 1); ``inf`` for 0."""
    return math.inf if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def region_mse(predictions: torch.Tensor, truth: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """``(N,)`` per-image mean squared error over ``region`` (broadcastable to ``(N, C, S, S)``, 1 = counted;
    ``None`` = every pixel) of ``predictions`` clamped to [0, 1] against ``truth``."""
    err = (predictions.clamp(0.0, 1.0) - truth).pow(2)
    if region is None:
        return err.flatten(1).mean(dim=1)
    w = region.expand_as(err).to(err.dtype)
    counted = w.flatten(1).sum(dim=1)
    if (counted == 0).any():
        raise ValueError("a region to score is empty for some image")
    return (err * w).flatten(1).sum(dim=1) / counted


def masked_scores(predictions: torch.Tensor, truth: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """``{"mse_hidden", "psnr_hidden", "mse_whole", "psnr_whole"}`` for ``predictions, truth: (N, C, S, S)``
    and ``masks`` (broadcastable; 1 visible, 0 hidden)."""
    hidden = region_mse(predictions, truth, 1.0 - masks).mean().item()
    whole = region_mse(predictions, truth).mean().item()
    return {"mse_hidden": hidden, "psnr_hidden": psnr(hidden), "mse_whole": whole, "psnr_whole": psnr(whole)}
