"""DeepSDF's clamped L1 loss, with one-sided (hinge) terms for free-space observations."""

from __future__ import annotations

import torch

from sdf_autodec.core.observations import Observations


def clamped_l1(predictions: torch.Tensor, obs: Observations, clamp: float) -> torch.Tensor:
    """Per-element ``|clamp(f) - clamp(s)|``; where ``obs.lower_bound``, the hinge ``max(0, clamp(s) - clamp(f))``.

    ``predictions: (K, N, 1)``, ``obs.targets: (K, N)`` → ``(K, N)``. ``clamp`` is DeepSDF's δ (0.1).
    """
    pred = predictions.squeeze(-1).clamp(-clamp, clamp)
    target = obs.targets.clamp(-clamp, clamp)
    loss = (pred - target).abs()
    if obs.lower_bound is not None:
        loss = torch.where(obs.lower_bound, torch.relu(target - pred), loss)
    return loss
