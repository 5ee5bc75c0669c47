"""DVR / Occupancy Networks ground truth: ``<id>/pointcloud.npz``, the one reader (not written here).

The file holds ``points`` and ``normals`` ``(N, 3)`` float16 on the whole shape, in the same world
frame as the object's depth renderings (about [-0.5, 0.5]^3), and ``loc``/``scale`` of the
normalisation already applied to the original mesh (not used). The normals' signs are arbitrary.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sdf_autodec.storage.layout import DatasetError

DVR_CLOUD = "pointcloud.npz"


def dvr_ids(root: str | Path) -> set[str]:
    """The objects of a DVR folder: the names of its sub-folders that hold a ``pointcloud.npz``."""
    return {p.parent.name for p in Path(root).glob(f"*/{DVR_CLOUD}")}


def read_dvr_cloud(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``points, normals: (N, 3)`` float64 of a ``pointcloud.npz``, as stored (normals of arbitrary
    sign and about unit length); :class:`DatasetError` naming the file when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: ground-truth point cloud ({DVR_CLOUD}) not found")
    try:
        with np.load(path) as data:
            points, normals = np.asarray(data["points"], np.float64), np.asarray(data["normals"], np.float64)
    except Exception as e:
        raise DatasetError(f"{path}: unreadable ground-truth point cloud ({type(e).__name__}: {e})") from None
    if points.ndim != 2 or points.shape[1] != 3 or normals.shape != points.shape:
        raise DatasetError(f"{path}: expected points and normals of shape (N, 3), got {points.shape} and {normals.shape}")
    return points, normals
