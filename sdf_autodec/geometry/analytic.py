"""Analytic signed distance functions, used as ground truth in tests and benchmarks.

All follow the project's convention: negative inside, positive outside.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def sphere_sdf(points: ArrayLike, radius: float = 0.5, center=(0.0, 0.0, 0.0)) -> ArrayLike:
    """Exact SDF of a sphere. ``points: (..., 3)`` → ``(...)``."""
    if isinstance(points, torch.Tensor):
        c = torch.as_tensor(center, dtype=points.dtype, device=points.device)
        return torch.linalg.norm(points - c, dim=-1) - radius
    return np.linalg.norm(np.asarray(points) - np.asarray(center), axis=-1) - radius


def box_sdf(points: ArrayLike, half_extents=(0.4, 0.3, 0.2), center=(0.0, 0.0, 0.0)) -> ArrayLike:
    """Exact SDF of an axis-aligned box. ``points: (..., 3)`` → ``(...)``."""
    if isinstance(points, torch.Tensor):
        h = torch.as_tensor(half_extents, dtype=points.dtype, device=points.device)
        c = torch.as_tensor(center, dtype=points.dtype, device=points.device)
        q = (points - c).abs() - h
        outside = torch.linalg.norm(q.clamp(min=0.0), dim=-1)
        inside = q.max(dim=-1).values.clamp(max=0.0)
        return outside + inside
    q = np.abs(np.asarray(points) - np.asarray(center)) - np.asarray(half_extents)
    return np.linalg.norm(np.maximum(q, 0.0), axis=-1) + np.minimum(q.max(axis=-1), 0.0)
