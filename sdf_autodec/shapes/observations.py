"""SDF observations built from a partial point cloud, for completion by latent fitting.

For each observed surface point ``p`` with unit direction ``d`` (the viewing ray from the camera,
or the outward normal when the camera is unknown):

- ``p`` itself: SDF = 0;
- ``p - η d`` (in front of the surface, towards the camera): SDF = +η |cos θ|;
- ``p + η d`` (behind the surface): SDF = -η |cos θ|;

where θ is the angle between ``d`` and the surface normal (estimated from the cloud when the scan
has none): along a ray the distance to a plane shrinks by |cos θ|, and rays that graze the surface
(θ above ``grazing_limit_deg``) are not used, since there ``p + η d`` may leave the shape again.
- with a camera, free-space points ``c + t (p - c)`` on the ray between where it enters the unit
  sphere and ``free_space_margin`` before the hit: there the SDF is only known to be positive, so
  they enter as a one-sided (hinge) constraint with bound 0.

Everything else — the unobserved part of the shape — simply contributes nothing to the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdf_autodec.shapes.scans import PartialScan, estimate_normals


@dataclass
class ObservationConfig:
    """How a partial scan becomes SDF observations."""

    num_surface: int = 4000
    """Surface points used per shape (subsampled, or drawn with replacement when fewer)."""
    eta: float = 0.01
    """Offset along the ray/normal for the ±η samples, in the normalised frame."""
    free_space_per_point: float = 1.0
    """Free-space samples per surface point (only with a known camera)."""
    free_space_margin: float = 0.05
    """Free-space samples stay at least this far (normalised units) in front of the hit."""
    normal_knn: int = 30
    """Neighbours for normal estimation when the scan has no normals."""
    orient_normals: str = "viewpoint"
    """How estimated normals of a scan with no camera are turned outwards: ``viewpoint`` (towards the
    position one depth camera could have seen the cloud from), ``centroid`` or ``none``; see
    :func:`sdf_autodec.shapes.scans.estimate_normals`."""
    grazing_limit_deg: float = 75.0
    """Surface points seen at a larger angle between ray and normal are not used (camera scans)."""


@dataclass
class ShapeObservations:
    """Observations of one shape: ``queries: (N, 3)``, ``targets: (N,)``, ``lower_bound: (N,)`` bool."""

    queries: np.ndarray
    targets: np.ndarray
    lower_bound: np.ndarray


def observe(scan: PartialScan, cfg: ObservationConfig, rng: np.random.Generator) -> ShapeObservations:
    """Build the observations of one scan (already in the model's normalised frame)."""
    normals = scan.normals if scan.normals is not None else estimate_normals(
        scan.points, cfg.normal_knn, orient="none" if scan.camera_origin is not None else cfg.orient_normals
    )
    if scan.camera_origin is not None:
        origins = np.broadcast_to(np.asarray(scan.camera_origin, dtype=np.float64), scan.points.shape)  # (M, 3): one camera, or one per point
        rays = scan.points - origins
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        cos = np.abs(np.sum(rays * normals, axis=1))
        usable = np.flatnonzero(cos >= np.cos(np.deg2rad(cfg.grazing_limit_deg)))
        if len(usable) == 0:
            usable = np.arange(len(scan.points))
    else:
        usable = np.arange(len(scan.points))
    pick = usable[rng.choice(len(usable), cfg.num_surface, replace=len(usable) < cfg.num_surface)]
    p = scan.points[pick]
    if scan.camera_origin is not None:
        origin = origins[pick]
        to_point = p - origin
        ray_length = np.linalg.norm(to_point, axis=1, keepdims=True)
        d = to_point / ray_length  # viewing ray: camera → surface
        offset = cfg.eta * cos[pick]
        front, behind = p - cfg.eta * d, p + cfg.eta * d
    else:
        offset = np.full(len(p), cfg.eta)
        front, behind = p + cfg.eta * normals[pick], p - cfg.eta * normals[pick]
    queries = [p, front, behind]
    targets = [np.zeros(len(p)), offset, -offset]
    bounds = [np.zeros(3 * len(p), dtype=bool)]
    if scan.camera_origin is not None and cfg.free_space_per_point > 0:
        n_free = int(round(cfg.free_space_per_point * len(p)))
        j = rng.integers(0, len(p), n_free)
        t_max = np.clip(1.0 - cfg.free_space_margin / ray_length[j, 0], 0.0, 1.0)
        t_min = np.minimum(_enter_unit_sphere(origin[j], to_point[j]), t_max)
        t = t_min + rng.uniform(0.0, 1.0, n_free) * (t_max - t_min)
        queries.append(origin[j] + t[:, None] * to_point[j])
        targets.append(np.zeros(n_free))
        bounds.append(np.ones(n_free, dtype=bool))
    return ShapeObservations(
        queries=np.concatenate(queries).astype(np.float32),
        targets=np.concatenate(targets).astype(np.float32),
        lower_bound=np.concatenate(bounds),
    )


def _enter_unit_sphere(origin: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """Ray parameter where ``origin + t * rays`` enters the unit sphere (0 if it starts inside or
    misses); ``origin: (3,)`` or ``(R, 3)``, ``rays: (R, 3)`` → ``(R,)``."""
    origin = np.broadcast_to(origin, rays.shape)
    a = np.sum(rays * rays, axis=1)
    b = np.sum(rays * origin, axis=1)
    c = np.sum(origin * origin, axis=1) - 1.0
    disc = b * b - a * c
    t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
    return np.where((disc > 0) & (c > 0), np.maximum(t, 0.0), 0.0)
