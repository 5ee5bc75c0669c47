"""A virtual depth scanner: Open3D ray casting from a pinhole camera gives a partial point cloud.

Camera convention (OpenCV): x right, y down, z forward; ``world_to_camera`` is a 4x4 rigid
transform and ``intrinsics`` the 3x3 pixel matrix. ``depth[v, u]`` is the camera-frame z of the
first hit through pixel (u, v), ``inf`` where the ray misses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from data_prep.raycast import raycasting_scene
from sdf_autodec.geometry.frames import perpendicular_pair
from sdf_autodec.storage.layout import write_scan
from sdf_autodec.optional import open3d


@dataclass
class ScanConfig:
    """Virtual scans per shape."""

    views: int = 1
    """Depth views per shape, each from its own seeded random direction."""
    width: int = 160
    """Image width in pixels."""
    height: int = 160
    """Image height in pixels."""
    fov_deg: float = 50.0
    """Horizontal field of view."""
    distance: float = 2.5
    """Camera distance from the origin (the shape is normalised into the unit sphere)."""
    elevation_deg: list[float] = field(default_factory=lambda: [10.0, 50.0])
    """Range of camera elevations above the horizontal plane (the up axis is ``up``)."""
    up: list[float] = field(default_factory=lambda: [0.0, 1.0, 0.0])
    """World up axis."""


@dataclass
class Camera:
    """A pinhole camera."""

    intrinsics: np.ndarray  # (3, 3)
    world_to_camera: np.ndarray  # (4, 4)
    width: int
    height: int

    @property
    def origin(self) -> np.ndarray:
        """Camera centre in world coordinates, ``(3,)``."""
        r, t = self.world_to_camera[:3, :3], self.world_to_camera[:3, 3]
        return -r.T @ t


@dataclass
class Scan:
    """One depth view and its back-projected points (world frame)."""

    points: np.ndarray  # (M, 3) float32
    depth: np.ndarray  # (H, W) float32, inf = background
    camera: Camera


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """World-to-camera 4x4 for a camera at ``eye`` looking at ``target`` (OpenCV axes)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-8:  # looking along `up`: pick any perpendicular
        right = np.cross(forward, np.array([1.0, 0.0, 0.0]) if abs(forward[0]) < 0.9 else np.array([0.0, 0.0, 1.0]))
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    r = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, -r @ eye
    return m


def random_camera(cfg: ScanConfig, rng: np.random.Generator) -> Camera:
    """A camera at ``cfg.distance`` from the origin, random azimuth, elevation in the configured range."""
    up = np.asarray(cfg.up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    a, b = perpendicular_pair(up)
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    elevation = np.deg2rad(rng.uniform(*cfg.elevation_deg))
    direction = np.cos(elevation) * (np.cos(azimuth) * a + np.sin(azimuth) * b) + np.sin(elevation) * up
    focal = 0.5 * cfg.width / np.tan(0.5 * np.deg2rad(cfg.fov_deg))
    intrinsics = np.array([[focal, 0.0, cfg.width / 2.0], [0.0, focal, cfg.height / 2.0], [0.0, 0.0, 1.0]])
    return Camera(intrinsics, look_at(cfg.distance * direction, np.zeros(3), up), cfg.width, cfg.height)


def scan_mesh(mesh: trimesh.Trimesh, camera: Camera, scene=None) -> Scan:
    """Cast one ray per pixel of ``camera`` at ``mesh``; ``scene`` reuses a RaycastingScene."""
    o3d = open3d()
    if scene is None:
        scene = raycasting_scene(mesh)
    rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
        o3d.core.Tensor(camera.intrinsics), o3d.core.Tensor(camera.world_to_camera), camera.width, camera.height
    )
    t_hit = scene.cast_rays(rays)["t_hit"].numpy()  # (H, W)
    rays = rays.numpy()  # (H, W, 6): origin, direction
    hit = np.isfinite(t_hit)
    points = rays[..., :3][hit] + t_hit[hit][:, None] * rays[..., 3:][hit]
    depth = np.full(t_hit.shape, np.inf, dtype=np.float32)
    cam = points @ camera.world_to_camera[:3, :3].T + camera.world_to_camera[:3, 3]
    depth[hit] = cam[:, 2]
    return Scan(points.astype(np.float32), depth, camera)


def save_scan(path: Path, scan: Scan) -> None:
    """Write ``points``, ``depth``, ``intrinsics``, ``world_to_camera`` and ``camera_origin`` to an npz."""
    write_scan(path, scan.points, depth=scan.depth, intrinsics=scan.camera.intrinsics, world_to_camera=scan.camera.world_to_camera, camera_origin=scan.camera.origin)
