"""Per-shape normalisation, and its inverse: ``normalised = (x + offset) * scale`` with
``offset = -(bounding-box centre)`` and ``scale`` chosen by the convention:

- ``deepsdf`` (default): the farthest vertex from the centre lies at ``1 / buffer`` (DeepSDF: 1.03),
  inside the unit sphere;
- ``unit_cube``: the longest side of the bounding box is 1, so the shape lies in ``[-0.5, 0.5]^3`` —
  the frame of Occupancy Networks / DVR's ShapeNet data (``loc``, ``scale`` in their npz files), so
  that a model trained in it takes their scans and ground truth without any transform.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEEPSDF_BUFFER = 1.03
"""DeepSDF puts the farthest vertex at 1/1.03 from the origin, leaving a margin inside the unit sphere."""


@dataclass(frozen=True)
class Normalization:
    """Per-shape normalisation parameters, as stored in ``NormalizationParameters/<...>.npz``."""

    offset: np.ndarray  # (3,) float64
    scale: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Source frame → normalised frame. ``points: (N, 3)`` → ``(N, 3)``."""
        return (np.asarray(points, dtype=np.float64) + self.offset) * self.scale

    def invert(self, points: np.ndarray) -> np.ndarray:
        """Normalised frame → source frame. ``points: (N, 3)`` → ``(N, 3)``."""
        return np.asarray(points, dtype=np.float64) / self.scale - self.offset


NORMALIZATIONS = ("deepsdf", "unit_cube")


def normalization(vertices: np.ndarray, convention: str = "deepsdf") -> Normalization:
    """Parameters of ``convention`` (one of ``NORMALIZATIONS``) for ``vertices: (V, 3)``."""
    if convention == "deepsdf":
        return deepsdf_normalization(vertices)
    if convention == "unit_cube":
        return unit_cube_normalization(vertices)
    raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {convention!r}")


def unit_cube_normalization(vertices: np.ndarray) -> Normalization:
    """Parameters that centre the bounding box of ``vertices: (V, 3)`` and make its longest side 1."""
    v = _checked(vertices)
    extent = float((v.max(axis=0) - v.min(axis=0)).max())
    if extent <= 0.0:
        raise ValueError("all vertices coincide: the shape has no extent")
    return Normalization(offset=-0.5 * (v.min(axis=0) + v.max(axis=0)), scale=1.0 / extent)


def _checked(vertices: np.ndarray) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"expected vertices of shape (V, 3) with V > 0, got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain NaN or inf")
    return v


def deepsdf_normalization(vertices: np.ndarray, buffer: float = DEEPSDF_BUFFER) -> Normalization:
    """Parameters that map ``vertices: (V, 3)`` into the unit sphere the DeepSDF way.

    Raises ValueError for empty, non-finite or degenerate (single point) vertex sets.
    """
    v = _checked(vertices)
    center = 0.5 * (v.min(axis=0) + v.max(axis=0))
    radius = np.linalg.norm(v - center, axis=1).max()
    if radius <= 0.0:
        raise ValueError("all vertices coincide: the shape has no extent")
    return Normalization(offset=-center, scale=float(1.0 / (radius * buffer)))
