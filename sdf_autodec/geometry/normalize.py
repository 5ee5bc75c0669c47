"""DeepSDF's normalisation into the unit sphere, and its inverse.

``normalised = (x + offset) * scale`` with ``offset = -(bounding-box centre)`` and ``scale`` chosen so
that the farthest vertex from that centre lies at distance ``1 / buffer`` (DeepSDF: buffer 1.03).
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


def deepsdf_normalization(vertices: np.ndarray, buffer: float = DEEPSDF_BUFFER) -> Normalization:
    """Parameters that map ``vertices: (V, 3)`` into the unit sphere the DeepSDF way.

    Raises ValueError for empty, non-finite or degenerate (single point) vertex sets.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise ValueError(f"expected vertices of shape (V, 3) with V > 0, got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("vertices contain NaN or inf")
    center = 0.5 * (v.min(axis=0) + v.max(axis=0))
    radius = np.linalg.norm(v - center, axis=1).max()
    if radius <= 0.0:
        raise ValueError("all vertices coincide: the shape has no extent")
    return Normalization(offset=-center, scale=float(1.0 / (radius * buffer)))
