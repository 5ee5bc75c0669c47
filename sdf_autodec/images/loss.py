"""The image domain's per-element loss: squared error per pixel (the core weighs and averages it)."""

from __future__ import annotations

import torch

from sdf_autodec.core.observations import Observations


def squared_error(predictions: torch.Tensor, obs: Observations) -> torch.Tensor:
    """Per-pixel ``(f - x)²``: ``predictions`` and ``obs.targets`` ``(K, C, S, S)`` → ``(K, C, S, S)``."""
    return (predictions - obs.targets).pow(2)
