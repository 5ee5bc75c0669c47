"""Mesh extraction: evaluate a decoder on a grid over ``[-1, 1]^3``, then marching cubes.

The grid is exact (both corners at ±1; see ``geometry.grid``). Values are computed in chunks of
``max_batch`` queries, so memory does not grow with the resolution beyond the ``R³`` float grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh
from skimage.measure import marching_cubes

from sdf_autodec.atomic import atomic_write
from sdf_autodec.geometry.grid import grid_points, grid_spacing
from sdf_autodec.geometry.normalize import Normalization


class EmptyLevelSet(ValueError):
    """The zero level set does not cross the grid: there is no surface to mesh."""


@dataclass
class MeshConfig:
    """Dense mesh extraction."""

    resolution: int = 256
    """Grid samples per axis over [-1, 1]."""
    max_batch: int = 262_144
    """Decoder queries per forward pass."""
    level: float = 0.0
    """Iso-level to extract."""


@torch.no_grad()
def decode_grid(decoder: torch.nn.Module, code: torch.Tensor, resolution: int, max_batch: int = 262_144) -> torch.Tensor:
    """SDF on the dense grid. ``code: (D,)`` → ``(R, R, R)`` float32 on the CPU, index order (x, y, z)."""
    device = code.device
    points = grid_points(resolution)
    values = torch.empty(len(points))
    z = code.reshape(1, -1)
    for start in range(0, len(points), max_batch):
        chunk = points[start : start + max_batch].to(device)
        values[start : start + len(chunk)] = decoder(z, chunk[None]).reshape(-1).float().cpu()
    return values.reshape(resolution, resolution, resolution)


def marching_cubes_mesh(values: np.ndarray | torch.Tensor, lo: float = -1.0, hi: float = 1.0, level: float = 0.0) -> trimesh.Trimesh:
    """Triangle mesh of the ``level`` set of ``values: (R, R, R)`` sampled on the grid over ``[lo, hi]^3``.

    Faces are oriented with normals pointing towards increasing values (outwards for an SDF that is
    negative inside). Raises :class:`EmptyLevelSet` when the level is not crossed.
    """
    v = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if not np.isfinite(v).all():
        raise ValueError("grid values contain NaN or inf")
    if v.min() > level or v.max() < level:
        raise EmptyLevelSet(f"no surface: grid values lie in [{v.min():.4g}, {v.max():.4g}], level {level} is not crossed")
    h = grid_spacing(v.shape[0], lo, hi)
    verts, faces, _, _ = marching_cubes(v, level=level, spacing=(h, h, h), gradient_direction="descent")
    return trimesh.Trimesh(verts + lo, faces, process=False)


def extract_mesh(decoder: torch.nn.Module, code: torch.Tensor, cfg: MeshConfig) -> trimesh.Trimesh:
    """Decoder + code → mesh in the normalised frame (dense grid, marching cubes)."""
    return marching_cubes_mesh(decode_grid(decoder, code, cfg.resolution, cfg.max_batch), level=cfg.level)


def write_mesh(mesh: trimesh.Trimesh, path: str | Path, normalization: Normalization | None = None) -> Path:
    """Write ``mesh`` (format by suffix, PLY by default), mapped back to the source frame when ``normalization`` is given."""
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".ply")
    out = mesh if normalization is None else trimesh.Trimesh(normalization.invert(mesh.vertices), mesh.faces, process=False)
    atomic_write(path, lambda tmp: out.export(tmp))
    return path
