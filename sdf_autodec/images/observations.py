"""Images as the core's observations: every pixel a target, a mask its weight (0 = hidden)."""

from __future__ import annotations

import torch

from sdf_autodec.core.observations import Observations


def pixel_observations(images: torch.Tensor, weights: torch.Tensor | None = None) -> Observations:
    """The core's observation batch for ``images: (K, C, S, S)``; ``weights`` (broadcastable) are
    per-pixel (0 = hidden). The image decoder ignores queries: they are an empty ``(K, 0, 2)``."""
    if weights is not None:
        weights = weights.expand_as(images).to(images.dtype)
    return Observations(queries=images.new_zeros(images.shape[0], 0, 2), targets=images, weights=weights)
