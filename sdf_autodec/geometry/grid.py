"""Regular grids over the normalisation cube ``[-1, 1]^3``.

DeepSDF builds its grid with ``voxel_size = 2 / (N - 1)`` but indexes it so that the far corner
lands at ``-1 + N * 2/(N-1) ≈ 1.0078`` for N = 256 (an off-by-one). Here sample ``i`` of ``N`` lies
exactly at ``lo + i * (hi - lo) / (N - 1)``: both corners are hit exactly.
"""

from __future__ import annotations

import torch


def grid_spacing(resolution: int, lo: float = -1.0, hi: float = 1.0) -> float:
    """Distance between neighbouring grid samples."""
    if resolution < 2:
        raise ValueError(f"grid resolution must be at least 2, got {resolution}")
    return (hi - lo) / (resolution - 1)


def grid_axis(resolution: int, lo: float = -1.0, hi: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    """The ``resolution`` sample positions along one axis, both ends included. → ``(R,)``"""
    grid_spacing(resolution, lo, hi)
    return torch.linspace(lo, hi, resolution, dtype=dtype)


def grid_points(resolution: int, lo: float = -1.0, hi: float = 1.0, dtype=torch.float32) -> torch.Tensor:
    """All grid samples in ``ij`` order (x slowest). → ``(R**3, 3)``; reshape values to ``(R, R, R)``."""
    axis = grid_axis(resolution, lo, hi, dtype)
    xs, ys, zs = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([xs, ys, zs], dim=-1).reshape(-1, 3)
