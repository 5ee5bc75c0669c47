"""Small frame constructions shared by cameras and ray casting."""

from __future__ import annotations

import numpy as np


def perpendicular_pair(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors ``a, b`` with ``(a, b, axis)`` orthonormal; ``axis: (3,)`` unit length."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    a = np.cross(axis, helper)
    a /= np.linalg.norm(a)
    return a, np.cross(axis, a)
