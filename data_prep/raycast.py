"""Ray casting and exact distance queries on a triangle mesh (Open3D's ``RaycastingScene``, Embree).

The one place that builds a scene and asks it where the surface is: the closest surface point of
each query (distance, point, triangle, barycentric coordinates), and Open3D's own signed distance
(the reference the robust signs of :mod:`data_prep.signs` are checked against). Visibility
(:mod:`data_prep.repair`), signs and sampling all query through it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from sdf_autodec import optional
from sdf_autodec.optional import open3d


def raycasting_scene(mesh: trimesh.Trimesh):
    """An Open3D ``RaycastingScene`` holding ``mesh``."""
    o3d = open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.asarray(mesh.faces, dtype=np.uint32)),
    )
    return scene


def signed_distance(scene, points: np.ndarray, sign_rays: int = 3) -> np.ndarray:
    """Open3D's own SDF (negative inside; majority of ``sign_rays`` parities). Exact for watertight
    meshes only: the reference the robust path is checked against. ``(N, 3)`` → ``(N,)``."""
    if sign_rays < 1 or sign_rays % 2 == 0:
        raise ValueError(f"sign_rays must be a positive odd number, got {sign_rays}")
    o3d = open3d()
    query = o3d.core.Tensor(np.ascontiguousarray(points, dtype=np.float32))
    return scene.compute_signed_distance(query, nsamples=sign_rays).numpy()


@dataclass
class ClosestPoints:
    """Closest surface points of query points, from one Open3D query."""

    distance: np.ndarray  # (N,) float32, unsigned
    point: np.ndarray  # (N, 3) float32, the closest surface point
    face: np.ndarray  # (N,) int64, the triangle it lies on
    barycentric: np.ndarray  # (N, 3) float32, its barycentric coordinates in that triangle


def closest_points(scene, points: np.ndarray) -> ClosestPoints:
    """Closest point on the scene's mesh to each of ``points: (N, 3)`` (exact; Open3D/Embree BVH)."""
    o3d = open3d()
    query = np.ascontiguousarray(points, dtype=np.float32)
    found = scene.compute_closest_points(o3d.core.Tensor.from_numpy(query), nthreads=optional.THREADS)
    closest = found["points"].numpy()
    uv = found["primitive_uvs"].numpy()
    barycentric = np.column_stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]])
    distance = np.linalg.norm(query - closest, axis=1)
    return ClosestPoints(distance.astype(np.float32), closest, found["primitive_ids"].numpy().astype(np.int64), barycentric)
