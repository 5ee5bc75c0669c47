"""Point-cloud operations in numpy (nearest neighbours via scipy's cKDTree)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def nearest(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each ``query: (N, 3)`` point, its distance to and index of the nearest ``reference: (M, 3)`` point."""
    if len(reference) == 0:
        raise ValueError("reference point set is empty")
    dist, idx = cKDTree(reference).query(query, k=1, workers=-1)
    return dist, idx
