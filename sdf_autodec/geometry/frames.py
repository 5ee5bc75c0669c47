"""Small frame constructions shared by cameras and ray casting, and the empty rays of a depth view."""

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


def cube_rotations() -> np.ndarray:
    """The 24 proper rotations of the cube, ``(24, 3, 3)``, the identity first: signed permutations of
    the axes with determinant +1. Each maps an axis-aligned box centred at the origin onto another,
    so a shape in DeepSDF's frame (bounding-box centre at the origin, inside the unit sphere) stays
    in it, exactly: the poses a mesh dataset with no common up axis or front comes in."""
    import itertools

    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            if np.linalg.det(m) > 0:
                out.append(m)
    out.sort(key=lambda m: not np.array_equal(m, np.eye(3)))  # identity first, the rest in a fixed order
    return np.stack(out)


ROTATION_SETS = {"none": 1, "cube": 24}
"""Training-time pose augmentation: ``none`` (each shape as given) or ``cube`` (its 24 cube rotations)."""


def rotation_set(name: str) -> np.ndarray:
    """``(R, 3, 3)`` rotations of the augmentation ``name`` (``ROTATION_SETS``); the identity first."""
    if name not in ROTATION_SETS:
        raise ValueError(f"rotations={name!r}: choose one of {', '.join(ROTATION_SETS)}")
    return np.eye(3)[None] if name == "none" else cube_rotations()


def instance_id(shape_id: str, rotation: int) -> str:
    """The training instance of ``shape_id`` in pose ``rotation``: ``<id>`` for the identity, else ``<id>@r<k>``."""
    return shape_id if rotation == 0 else f"{shape_id}@r{rotation}"


def parse_instance_id(name: str) -> tuple[str, int]:
    """``(shape id, rotation index)`` of a training instance's id (see :func:`instance_id`)."""
    shape, sep, rot = name.rpartition("@r")
    return (shape, int(rot)) if sep and rot.isdigit() else (name, 0)


def background_rays(depth: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray, stride: int = 1) -> np.ndarray:
    """The rays of a depth view that hit nothing: ``(B, 6)`` float32, the camera centre and the unit
    direction (world frame) through every ``stride``-th pixel (in both axes) whose depth is not finite.

    ``depth: (H, W)`` (``inf`` = background), ``intrinsics: (3, 3)`` pixel matrix with pixel ``(u, v)``'s
    centre at ``(u + 0.5, v + 0.5)``, ``world_to_camera: (4, 4)`` rigid (OpenCV axes). Such a ray passed
    through empty space all the way: the object lies inside the view's silhouette cone.
    """
    depth = np.asarray(depth)
    v, u = np.nonzero(~np.isfinite(depth[::stride, ::stride]))
    pix = np.stack([u * stride + 0.5, v * stride + 0.5, np.ones(len(u))])  # (3, B)
    r, t = world_to_camera[:3, :3], world_to_camera[:3, 3]
    directions = (np.linalg.solve(intrinsics, pix).T) @ r  # camera → world: R^T d, as rows
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    origin = -r.T @ t
    return np.concatenate([np.broadcast_to(origin, directions.shape), directions], axis=1).astype(np.float32)
