"""Signed-distance and surface samples of a normalised mesh, robust to non-watertight input.

Near-surface samples follow DeepSDF's PreprocessMesh: area-weighted points on the outer (visible)
surface, each perturbed twice with isotropic Gaussian noise (variances 0.005 and 0.0005), plus
uniform samples in the cube ``[-1, 1]^3``; 47/50 of the samples lie near the surface.
Distances are exact (closest point, Open3D/Embree). Signs are decided on the cleaned mesh without
its interior parts (see :mod:`data_prep.signs`): from the pseudo-normal at each closest point when
that mesh is closed and consistently oriented (checked against the winding number on a sample of
the points), by a ray-parity vote when it is closed only, by the generalised winding number otherwise.
Every sample keeps its *agreement* (how sure its sign is), and samples below the configured
agreement are dropped and counted in the QA record.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import trimesh

from data_prep.raycast import closest_points, raycasting_scene
from data_prep.repair import clean_mesh, face_components, face_visibility, orient_by_visibility
from data_prep.signs import SIGN_METHODS, SignConfig, robust_sign
from sdf_autodec.geometry.pointcloud import morton_order


UNANIMOUS = 0.95
"""Agreement below which a sample counts as disputed in QA: any dissenting ray of the parity vote
(8/9 < 0.95), or a winding number farther than 0.05 from 0 or 1."""


@dataclass
class SampleConfig:
    """How many SDF samples to draw per shape, where, and how signs are decided."""

    num_samples: int = 500_000
    """SDF samples drawn per shape (DeepSDF: 500000), before dropping unsure signs."""
    near_fraction: float = 0.94
    """Fraction of samples near the surface (DeepSDF: 47/50); the rest are uniform in the cube."""
    variance: float = 0.005
    """Variance of the wide near-surface perturbation (DeepSDF: 0.005)."""
    second_variance: float = 0.0005
    """Variance of the tight near-surface perturbation (DeepSDF: variance / 10)."""
    cube_half_size: float = 1.0
    """Uniform samples lie in ``[-h, h]^3``."""
    sign: SignConfig = field(default_factory=SignConfig)
    """How signs are decided (``samples.sign.method``, ``.check_fraction``, ...: :class:`data_prep.signs.SignConfig`)."""
    visibility_views: int = 100
    """Cameras on a sphere that decide which faces are outer surface (DeepSDF: 100)."""
    visibility_resolution: int = 128
    """Rays per camera side for the visibility pass."""
    surface_points: int = 30_000
    """Outer-surface samples (points + normals) kept for evaluation (DeepSDF: 30000)."""


@dataclass
class ShapeSamples:
    """Everything sampled from one shape (normalised frame)."""

    points: np.ndarray  # (N, 3) float32
    sdf: np.ndarray  # (N,) float32, negative inside
    agreement: np.ndarray  # (N,) float32 in [0.5, 1]
    surface_points: np.ndarray  # (S, 3)
    surface_normals: np.ndarray  # (S, 3)
    outer: trimesh.Trimesh  # the cleaned mesh without interior parts (used for scans)
    qa: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)  # seconds per stage: surface, sign, distance


def sample_surface(mesh: trimesh.Trimesh, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points uniform on the surface of ``mesh`` and their face normals, ``(count, 3)``
    float64 each, in random order: how many fall on each face is drawn at once (multinomial by
    area; zero-area faces get none), then a point uniform in each (folded barycentric coordinates).
    The same distribution as trimesh's sampler at a quarter of its cost (no binary search per point,
    and one coordinate at a time, which numpy gathers far faster than rows of three)."""
    vertices, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)
    corner = vertices[faces[:, 0]]  # (F, 3)
    side_a, side_b = vertices[faces[:, 1]] - corner, vertices[faces[:, 2]] - corner
    normal = np.cross(side_a, side_b)  # (F, 3): length twice the area
    area = np.linalg.norm(normal, axis=1)
    total = float(area.sum()) if len(faces) else 0.0
    if not total > 0:
        raise ValueError("cannot sample a surface with no area")
    face = rng.permutation(np.repeat(np.arange(len(faces)), rng.multinomial(count, area / total)))  # (count,)
    weights = rng.random((2, count))
    weights = np.where(weights[0] + weights[1] > 1.0, 1.0 - weights, weights)  # far half of the parallelogram, mirrored in
    points = np.empty((count, 3))
    for k in range(3):
        points[:, k] = corner[:, k].take(face) + weights[0] * side_a[:, k].take(face) + weights[1] * side_b[:, k].take(face)
    return points, normal[face] / area[face, None]  # faces drawn have area > 0


def near_and_uniform_points(surface: trimesh.Trimesh, cfg: SampleConfig, rng: np.random.Generator) -> np.ndarray:
    """DeepSDF's query points: ``(num_samples, 3)`` float32, near-surface first (wide, then tight), then uniform."""
    if not 0.0 <= cfg.near_fraction <= 1.0:
        raise ValueError(f"near_fraction must lie in [0, 1], got {cfg.near_fraction}")
    num_near = 2 * (int(cfg.num_samples * cfg.near_fraction) // 2)
    on_surface, _ = sample_surface(surface, num_near // 2, rng)
    points = np.empty((cfg.num_samples, 3), dtype=np.float32)
    for start, variance in ((0, cfg.variance), (num_near // 2, cfg.second_variance)):
        noise = rng.standard_normal(on_surface.shape, dtype=np.float32) * np.float32(np.sqrt(variance))
        np.add(on_surface, noise, out=points[start : start + num_near // 2], casting="unsafe")
    points[num_near:] = rng.uniform(-cfg.cube_half_size, cfg.cube_half_size, (cfg.num_samples - num_near, 3))
    return points


@dataclass
class OuterSurface:
    """A mesh made ready for signing: cleaned, interior parts removed, seen faces oriented outwards."""

    outer: trimesh.Trimesh  # cleaned, oriented, without interior components: distances and signs
    visible: trimesh.Trimesh  # faces seen from outside: where samples are drawn
    scene: object  # Open3D RaycastingScene of ``outer``
    method: str  # "pseudonormal", "parity" or "winding"
    qa: dict


def outer_surface(mesh: trimesh.Trimesh, cfg: SampleConfig) -> OuterSurface:
    """Clean ``mesh``, find which faces are seen from outside (and from which side), orient them,
    drop components never seen, and pick the sign method (see :mod:`data_prep.signs`)."""
    if cfg.sign.method not in SIGN_METHODS:
        raise ValueError(f"sign.method must be one of {', '.join(SIGN_METHODS)}, got {cfg.sign.method!r}")
    cleaned, report = clean_mesh(mesh)
    if len(cleaned.faces) == 0:
        raise ValueError("no faces left after removing degenerate and duplicated faces")
    vis = face_visibility(cleaned, cfg.visibility_views, cfg.visibility_resolution)
    visible = vis.visible
    if not visible.any():
        raise ValueError("no face is visible from outside")
    oriented, flipped = orient_by_visibility(cleaned, vis)
    labels = face_components(cleaned)
    outer_labels = np.unique(labels[visible])
    keep = np.isin(labels, outer_labels)
    outer = trimesh.Trimesh(oriented.vertices, oriented.faces[keep], process=False)
    watertight = bool(cleaned.is_watertight)
    consistent = watertight and bool(outer.is_winding_consistent)
    if cfg.sign.method == "auto":
        method = "pseudonormal" if consistent else "parity" if watertight else "winding"
    elif cfg.sign.method == "pseudonormal" and not consistent:
        raise ValueError("sign.method=pseudonormal needs a closed, consistently oriented mesh after clean-up")
    else:
        method = cfg.sign.method
    qa = {
        "watertight": bool(mesh.is_watertight),
        "watertight_after_clean": watertight,
        "sign_method": method,
        "components": int(len(np.unique(labels))),
        "interior_components_removed": int(len(np.unique(labels)) - len(outer_labels)),
        "merged_vertices": report.merged_vertices,
        "degenerate_faces": report.degenerate_faces,
        "duplicate_faces": report.duplicate_faces,
        "faces_reoriented": flipped,
        "visible_face_fraction": round(float(visible.mean()), 4),
    }
    visible_surface = trimesh.Trimesh(cleaned.vertices, cleaned.faces[visible], process=False)
    return OuterSurface(outer, visible_surface, raycasting_scene(outer), method, qa)


def sample_shape(mesh: trimesh.Trimesh, cfg: SampleConfig, rng: np.random.Generator) -> ShapeSamples:
    """Clean ``mesh`` (normalised frame), find its outer surface, and sample SDF and surface points."""
    t = {}
    t0 = time.perf_counter()
    surface = outer_surface(mesh, cfg)
    points = near_and_uniform_points(surface.visible, cfg, rng)
    surface_points, surface_normals = sample_surface(surface.visible, cfg.surface_points, rng)
    t["surface"], t0 = time.perf_counter() - t0, time.perf_counter()
    order = morton_order(points)  # queries in space-filling-curve order reuse the trees' cache
    ordered = points[order]
    closest = closest_points(surface.scene, ordered)
    t["distance"], t0 = time.perf_counter() - t0, time.perf_counter()
    signs = robust_sign(surface, ordered, cfg.sign, seed=int(rng.integers(2**31)), closest=closest)
    t["sign"] = time.perf_counter() - t0
    restore = np.empty_like(order)
    restore[order] = np.arange(len(order))  # back to the order the points were drawn in
    signs = replace(signs, inside=signs.inside[restore], agreement=signs.agreement[restore])
    sdf = np.where(signs.inside, -closest.distance[restore], closest.distance[restore]).astype(np.float32)
    sure = signs.agreement >= cfg.sign.min_agreement
    qa = {
        **surface.qa,
        "sign_method": signs.method,
        "sign_disagreement_rate": round(float((signs.agreement < UNANIMOUS).mean()), 6),
        "dropped_fraction": round(float(1.0 - sure.mean()), 6),
    }
    if signs.check_mismatch is not None:
        qa["pseudonormal_check_mismatch"] = round(signs.check_mismatch, 6)
    if signs.winding_share is not None:
        qa["winding_share"] = signs.winding_share
    return ShapeSamples(points[sure], sdf[sure], signs.agreement[sure], surface_points, surface_normals, surface.outer, qa, t)
