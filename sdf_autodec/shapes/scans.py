"""Reading partial observations: point clouds with or without a camera.

Accepted inputs:

- ``.npz`` with ``points: (M, 3)`` and optionally ``camera_origin: (3,)`` (or ``world_to_camera:
  (4, 4)``), or ``camera_origins: (M, 3)`` (the camera that saw each point, for several views), and
  ``normals: (M, 3)`` — what ``sdf-autodec prep`` and ``sdf-autodec dvr`` write;
- ``.ply`` / ``.pcd`` / ``.xyz`` point clouds (normals used when present), read with Open3D.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdf_autodec.geometry.frames import fibonacci_sphere
from sdf_autodec.storage.layout import DatasetError, read_scan_arrays
from sdf_autodec.optional import open3d

SCAN_SUFFIXES = (".npz", ".ply", ".pcd", ".xyz", ".pts")
MIN_POINTS = 10
"""Fewest finite points a scan may have: normals need neighbours, and a fit needs something to fit."""


class ScanError(ValueError):
    """A scan file is missing, unreadable or empty; ``str(e)`` names the file."""


@dataclass
class PartialScan:
    """A partial observation of one shape."""

    name: str
    points: np.ndarray  # (M, 3) float64
    camera_origin: np.ndarray | None = None  # (3,), or (M, 3): the camera that saw each point
    normals: np.ndarray | None = None  # (M, 3), pointing outwards
    dropped: int = 0  # points of the file left out as not finite (NaN or inf)
    background: np.ndarray | None = None  # (B, 6): origin and unit direction of rays that hit nothing


def read_scan(path: str | Path) -> PartialScan:
    path = Path(path)
    if not path.is_file():
        raise ScanError(f"{path}: scan not found")
    camera = normals = background = None
    if path.suffix == ".npz":
        try:
            points, camera, normals, background = read_scan_arrays(path)
        except DatasetError as e:
            raise ScanError(str(e)) from None
    elif path.suffix in SCAN_SUFFIXES:
        cloud = open3d().io.read_point_cloud(str(path))
        points = np.asarray(cloud.points, dtype=np.float64)
        normals = np.asarray(cloud.normals, dtype=np.float64) if cloud.has_normals() else None
    else:
        raise ScanError(f"{path}: unsupported scan format (use {', '.join(SCAN_SUFFIXES)})")
    if points.ndim != 2 or points.shape[1] != 3:
        raise ScanError(f"{path}: points have shape {points.shape}, expected (M, 3)")
    keep = np.isfinite(points).all(axis=1)
    if camera is not None and camera.ndim == 2:
        keep &= np.isfinite(camera).all(axis=1)
    elif camera is not None and not np.isfinite(camera).all():
        raise ScanError(f"{path}: the camera position is not finite ({camera})")
    if keep.sum() < MIN_POINTS:
        raise ScanError(f"{path}: only {int(keep.sum())} finite points; need at least {MIN_POINTS}")
    if normals is not None and normals.shape != points.shape:
        normals = None
    if camera is not None and camera.ndim == 2:
        camera = camera[keep]
    if background is not None:
        background = background[np.isfinite(background).all(axis=1)]
    return PartialScan(path.stem, points[keep], camera, None if normals is None else normals[keep], dropped=int((~keep).sum()), background=background)


def find_scans(path: str | Path) -> list[Path]:
    """A scan file, or every scan file in a folder (sorted, recursive)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ScanError(f"{path}: no such scan file or folder")
    found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SCAN_SUFFIXES)
    if not found:
        raise ScanError(f"{path}: no scans ({', '.join(SCAN_SUFFIXES)}) in the folder")
    return found


NORMAL_ORIENTATIONS = ("gravity", "viewpoint", "centroid", "none")
UP = np.array([0.0, 1.0, 0.0])
"""Up in the canonical frame of ShapeNet, DVR/ONet and DeepSDF's normalisation (which only shifts and scales)."""


def estimate_viewpoint(points: np.ndarray, candidates: int = 64, distance: float = 2.5, up: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Where one depth camera could have seen the whole of a single-view cloud from.

    Of ``candidates`` positions (a Fibonacci sphere of directions, ``distance`` times the cloud's
    radius from its centroid; with ``up``, only those above the floor: the level of the cloud's lowest
    point along ``up``), the one from
    which Open3D's hidden-point removal (Katz, Tal & Basri 2007) keeps the most points.
    ``points: (M, 3)`` → ``(camera (3,), fraction of the points it sees)``.

    A thin surface looks the same from both of its sides, so for a table top or a wall the side this
    picks is often the wrong one (a spherical cap is seen whole from its hollow side too): use it for
    the axis, not the side (:func:`estimate_normals` picks the side by the centroid;
    ``complete orientation_hypotheses=true`` can fit both).
    """
    o3d = open3d()
    centre = points.mean(axis=0)
    radius = float(np.linalg.norm(points - centre, axis=1).max()) or 1.0
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    best, seen = centre + distance * radius * (np.array([0.0, 0.0, 1.0]) if up is None else up), -1
    directions = fibonacci_sphere(candidates)
    if up is not None:
        directions = directions[(centre + distance * radius * directions) @ up >= (points @ up).min()]
    for direction in directions:
        camera = centre + distance * radius * direction
        try:
            _, visible = cloud.hidden_point_removal(camera, 100.0 * distance * radius)
        except RuntimeError:  # Qhull gives up on nearly degenerate input (a flat cloud): this candidate sees nothing
            continue
        if len(visible) > seen:
            best, seen = camera, len(visible)
    return best, seen / len(points)


def estimate_normals(points: np.ndarray, k: int = 30, orient: str = "viewpoint", min_seen: float | None = None, up: np.ndarray = UP) -> np.ndarray:
    """Unit normals of a raw cloud by Open3D's PCA over ``k`` neighbours. ``(M, 3)`` → ``(M, 3)``.

    ``orient``:

    - ``gravity`` (single-view scans of upright objects): a camera stands above the floor the object
      stands on, so the viewpoint is searched among the positions above the cloud's lowest point
      along ``up`` (twice as many candidates as ``viewpoint``, those below the floor dropped), and
      each normal is turned towards it, with no flip afterwards: a thin surface is seen from the side
      the rest of the cloud is seen from (a table top from above, or from below when the legs are
      seen from below). Measured by ``benchmarks/orientation.py`` on the 20 DVR one-view table scans
      (results/orientation). A cloud no such position sees ``min_seen`` (default 0.5) of falls back
      to ``centroid``;

    - ``viewpoint`` (single-view scans): each normal is turned towards the camera position
      :func:`estimate_viewpoint` finds, which makes them agree with each other; as that position may
      lie on the wrong side of the surface, all of them are then flipped if they point towards the
      centroid on average. A cloud no single position sees ``min_seen`` (default 0.8) of (several views, or a whole
      object) falls back to ``centroid``. Measured on the 20 DVR one-view table scans against their
      true cameras: 98% of the normals agree with the true camera up to one flip per scan, against
      95% for ``centroid``'s propagation;
    - ``centroid``: made consistent by tangent-plane propagation, then flipped so that on average
      they point away from the centroid (where the propagation's Qhull fails, on nearly coplanar
      clouds, each normal is turned away from the centroid on its own);
    - ``none``: their sign is arbitrary (a camera decides it elsewhere).
    """
    if orient not in NORMAL_ORIENTATIONS:
        raise ValueError(f"orient must be one of {', '.join(NORMAL_ORIENTATIONS)}, got {orient!r}")
    o3d = open3d()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(o3d.geometry.KDTreeSearchParamKNN(knn=k))
    normals = np.asarray(cloud.normals)
    if orient == "none":
        return normals
    away = points - points.mean(axis=0)  # (M, 3)
    if orient == "gravity":
        camera, seen = estimate_viewpoint(points, candidates=128, up=np.asarray(up, dtype=np.float64) / np.linalg.norm(up))
        if seen >= (0.5 if min_seen is None else min_seen):
            return _each_towards(normals, camera - points)
    elif orient == "viewpoint":
        camera, seen = estimate_viewpoint(points)
        if seen >= (0.8 if min_seen is None else min_seen):
            return _outwards_on_average(_each_towards(normals, camera - points), away)
    try:
        cloud.orient_normals_consistent_tangent_plane(min(k, 15))
    except RuntimeError:  # its Delaunay graph fails on coplanar points (seen on a DVR table top): orient each alone
        return _each_towards(normals, away)
    return _outwards_on_average(np.asarray(cloud.normals), away)


def _each_towards(normals: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """``normals: (M, 3)``, each flipped where it points away from its ``directions`` row."""
    return np.where((np.sum(normals * directions, axis=1) < 0)[:, None], -normals, normals)


def _outwards_on_average(normals: np.ndarray, away: np.ndarray) -> np.ndarray:
    """``normals: (M, 3)``, all flipped if on average they point against ``away: (M, 3)``."""
    return normals if np.mean(np.sum(normals * away, axis=1)) >= 0 else -normals
