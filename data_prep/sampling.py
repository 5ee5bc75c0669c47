"""Signed-distance and surface samples of a normalised mesh, with Open3D's RaycastingScene.

Near-surface samples follow DeepSDF's PreprocessMesh: area-weighted surface points, each perturbed
twice with isotropic Gaussian noise (variances 0.005 and 0.0005), plus uniform samples in the cube
``[-1, 1]^3``; 47/50 of the samples lie near the surface. Distances are exact (closest point);
signs come from ray-parity votes (``sign_rays`` rays per point, majority wins).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from sdf_autodec.optional import open3d


@dataclass
class SampleConfig:
    """How many SDF samples to draw per shape, and where."""

    num_samples: int = 500_000
    """Total SDF samples per shape (DeepSDF: 500000)."""
    near_fraction: float = 0.94
    """Fraction of samples near the surface (DeepSDF: 47/50); the rest are uniform in the cube."""
    variance: float = 0.005
    """Variance of the wide near-surface perturbation (DeepSDF: 0.005)."""
    second_variance: float = 0.0005
    """Variance of the tight near-surface perturbation (DeepSDF: variance / 10)."""
    cube_half_size: float = 1.0
    """Uniform samples lie in ``[-h, h]^3``."""
    sign_rays: int = 3
    """Rays voting on each sample's sign (odd)."""
    surface_points: int = 30_000
    """Surface samples (points + normals) kept for evaluation (DeepSDF: 30000)."""


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
    """SDF (negative inside) of ``points: (N, 3)`` → ``(N,)`` float32."""
    if sign_rays < 1 or sign_rays % 2 == 0:
        raise ValueError(f"sign_rays must be a positive odd number, got {sign_rays}")
    o3d = open3d()
    query = o3d.core.Tensor(np.ascontiguousarray(points, dtype=np.float32))
    return scene.compute_signed_distance(query, nsamples=sign_rays).numpy()


def sample_surface(mesh: trimesh.Trimesh, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` area-weighted surface points and their face normals: ``(count, 3)`` each."""
    points, face_index = trimesh.sample.sample_surface(mesh, count, seed=rng)
    return np.asarray(points), np.asarray(mesh.face_normals[face_index])


def sample_sdf(mesh: trimesh.Trimesh, cfg: SampleConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """SDF samples of a mesh already in the normalised frame: ``points: (N, 3)``, ``sdf: (N,)``."""
    if not 0.0 <= cfg.near_fraction <= 1.0:
        raise ValueError(f"near_fraction must lie in [0, 1], got {cfg.near_fraction}")
    num_near = 2 * (int(cfg.num_samples * cfg.near_fraction) // 2)
    num_uniform = cfg.num_samples - num_near
    surface, _ = sample_surface(mesh, num_near // 2, rng)
    near = np.concatenate(
        [
            surface + rng.normal(0.0, np.sqrt(cfg.variance), surface.shape),
            surface + rng.normal(0.0, np.sqrt(cfg.second_variance), surface.shape),
        ]
    )
    uniform = rng.uniform(-cfg.cube_half_size, cfg.cube_half_size, (num_uniform, 3))
    points = np.concatenate([near, uniform]).astype(np.float32)
    return points, signed_distance(raycasting_scene(mesh), points, cfg.sign_rays)
