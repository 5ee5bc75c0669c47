"""Small frame constructions shared by cameras and ray casting."""

from __future__ import annotations

import numpy as np


def perpendicular_pair(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors ``a, b`` with ``(a, b, axis)`` orthonormal; ``axis: (3,)`` unit length."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    a = np.cross(axis, helper)
    a /= np.linalg.norm(a)
    return a, np.cross(axis, a)


def fibonacci_sphere(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors, ``(n, 3)``."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=1)
