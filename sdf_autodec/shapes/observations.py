"""SDF observations built from a partial point cloud, for completion by latent fitting.

For each observed surface point ``p`` with unit direction ``d`` (the viewing ray from the camera,
or the outward normal when the camera is unknown):

- ``p`` itself: SDF = 0;
- ``p - η d`` (in front of the surface, towards the camera): SDF = +η |cos θ|;
- ``p + η d`` (behind the surface): SDF = -η |cos θ|;

where θ is the angle between ``d`` and the surface normal (estimated from the cloud when the scan
has none): along a ray the distance to a plane shrinks by |cos θ|. Every point is used by default;
``grazing_limit_deg`` below 90 leaves out rays that graze the surface (there ``p + η d`` may leave a
thin shape again), but on the 20 DVR tables leaving them out cost more than it saved: one view,
Chamfer median 25.2e-3 with the old limit of 75°, 23.2e-3 at 60° (mean 34.3e-3), 18.2e-3 with none
(mean 26.3 → 24.2e-3; F@1% 0.22 → 0.26; benchmarks/RESULTS.md, "Why the camera path was worse").
With ``camera_offsets="normal"`` a scan with a camera takes the estimated normal as ``d`` instead,
turned towards the camera that saw the point (the seen side is the outside), with SDF ±η and every
point used: the camera settles the orientation, the normal keeps the offset's full size.
- with a camera, free-space points ``c + t (p - c)`` on the ray between where it enters the unit
  sphere and ``free_space_margin`` before the hit: there the SDF is only known to be positive, so
  they enter as a one-sided (hinge) constraint with bound 0.

- with ``background_per_point > 0`` and a scan that knows the rays that hit nothing (a depth view's
  background pixels: ``PartialScan.background``), points on those rays inside the sphere of radius
  ``background_radius`` times the farthest observed point (at most 1), with the same hinge: the
  object lies inside each view's silhouette cone (space carving).

Everything else — the unobserved part of the shape — simply contributes nothing to the loss.

With ``symmetry="canonical"``, the surface observations (points and their ±η offsets) are also
mirrored across the canonical frame's vertical symmetry plane (``x = 0``: ShapeNet's, DVR's and
DeepSDF's frames put the left-right mirror plane of most man-made objects there) and enter with
weight ``symmetry_weight``. A mirrored point that free space contradicts — some camera saw a surface
farther away along the ray through it, so the ray passed through it unobstructed — is dropped
together with its offsets (:func:`mirror_consistent`); without a camera nothing can contradict a
mirrored point. The plane is not estimated from the scan: a single view of a partial object does
not pin it down, and a wrong plane hurts more than none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scipy.spatial import cKDTree

from sdf_autodec.shapes.scans import PartialScan, estimate_normals

CAMERA_OFFSETS = ("ray", "normal")
SYMMETRIES = ("none", "canonical")


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
    orient_normals: str = "gravity"
    """How estimated normals of a scan with no camera are turned outwards: ``gravity`` (towards the
    position above the floor one depth camera could have seen the cloud from; up is +y),
    ``viewpoint`` (any position, then flipped if they face the centroid), ``centroid`` or ``none``;
    see :func:`sdf_autodec.shapes.scans.estimate_normals`."""
    grazing_limit_deg: float = 90.0
    """Surface points seen at a larger angle between ray and normal are not used (camera scans,
    ``camera_offsets=ray``); 90: every point (measured best; the module docstring)."""
    camera_offsets: str = "ray"
    """With a camera, where the ±η points go: ``ray`` (along the viewing ray, SDF ±η|cos θ|) or ``normal`` (along the estimated normal turned towards the camera, SDF ±η, every
    point used: the camera settles which side is outside, the normal keeps the full offset)."""
    background_per_point: float = 0.0
    """Samples on the rays that hit nothing per surface point (scans with ``background`` rays; 0: not used)."""
    background_radius: float = 1.25
    """Background samples lie within this many times the farthest observed point's distance from the origin (and the unit sphere)."""
    symmetry: str = "none"
    """``canonical``: also fit the surface observations mirrored across ``x = 0`` (module docstring); ``none``."""
    symmetry_weight: float = 0.5
    """Weight of a mirrored observation (an observed one weighs 1)."""
    symmetry_margin: float = 0.02
    """A mirrored point is contradicted when a camera saw a surface more than this much farther along its ray."""


@dataclass
class ShapeObservations:
    """Observations of one shape: ``queries: (N, 3)``, ``targets: (N,)``, ``lower_bound: (N,)`` bool,
    ``weights: (N,)`` (1 for what was observed, ``symmetry_weight`` for its mirror image, 0 for a
    mirrored point free space contradicts)."""

    queries: np.ndarray
    targets: np.ndarray
    lower_bound: np.ndarray
    weights: np.ndarray
    mirrored_dropped: float = 0.0
    """Share of the mirrored surface points dropped as contradicted (0 without symmetry)."""


def observe(scan: PartialScan, cfg: ObservationConfig, rng: np.random.Generator) -> ShapeObservations:
    """Build the observations of one scan (already in the model's normalised frame). Every scan of
    one config gives the same number of observations ``N`` (mirrored ones that are dropped keep their
    place with weight 0), so that scans can be stacked into one batch."""
    if cfg.symmetry not in SYMMETRIES:
        raise ValueError(f"symmetry={cfg.symmetry!r}: choose one of {', '.join(SYMMETRIES)}")
    if cfg.camera_offsets not in CAMERA_OFFSETS:
        raise ValueError(f"camera_offsets={cfg.camera_offsets!r}: choose one of {', '.join(CAMERA_OFFSETS)}")
    normals = scan.normals if scan.normals is not None else estimate_normals(
        scan.points, cfg.normal_knn, orient="none" if scan.camera_origin is not None else cfg.orient_normals
    )
    along_ray = scan.camera_origin is not None and cfg.camera_offsets == "ray"
    if scan.camera_origin is not None:
        origins = np.broadcast_to(np.asarray(scan.camera_origin, dtype=np.float64), scan.points.shape)  # (M, 3): one camera, or one per point
        rays = scan.points - origins
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        facing = np.sum(rays * normals, axis=1)
        cos = np.abs(facing)
        if not along_ray and scan.normals is None:  # the seen side is the outside: turn each normal towards its camera
            normals = np.where((facing > 0)[:, None], -normals, normals)
    usable = np.arange(len(scan.points))
    if along_ray:
        usable = np.flatnonzero(cos >= np.cos(np.deg2rad(cfg.grazing_limit_deg)))
        if len(usable) == 0:
            usable = np.arange(len(scan.points))
    pick = usable[rng.choice(len(usable), cfg.num_surface, replace=len(usable) < cfg.num_surface)]
    p = scan.points[pick]
    if scan.camera_origin is not None:
        origin = origins[pick]
        to_point = p - origin
        ray_length = np.linalg.norm(to_point, axis=1, keepdims=True)
        d = to_point / ray_length  # viewing ray: camera → surface
    if along_ray:
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
    if scan.background is not None and len(scan.background) and cfg.background_per_point > 0:
        radius = min(1.0, cfg.background_radius * float(np.linalg.norm(scan.points, axis=1).max()))
        o, d_bg = scan.background[:, :3], scan.background[:, 3:]
        t_in, t_out = _sphere_chord(o, d_bg, radius)
        crossing = np.flatnonzero(t_out > t_in)
        if len(crossing):
            n_bg = int(round(cfg.background_per_point * len(p)))
            j = crossing[rng.integers(0, len(crossing), n_bg)]
            t = t_in[j] + rng.uniform(0.0, 1.0, n_bg) * (t_out[j] - t_in[j])
            queries.append(o[j] + t[:, None] * d_bg[j])
            targets.append(np.zeros(n_bg))
            bounds.append(np.ones(n_bg, dtype=bool))
    weights = [np.ones(sum(len(q) for q in queries))]
    dropped = 0.0
    if cfg.symmetry == "canonical":
        surface = np.concatenate(queries[:3])  # p, front, behind: (3n, 3)
        mirrored = surface * np.array([-1.0, 1.0, 1.0])
        keep = np.ones(len(p), dtype=bool)
        if scan.camera_origin is not None:
            keep = mirror_consistent(mirrored[: len(p)], scan.points, origins, cfg.symmetry_margin)
        dropped = float(1.0 - keep.mean())
        queries.append(mirrored)
        targets.append(np.concatenate(targets[:3]))
        bounds.append(np.zeros(len(mirrored), dtype=bool))
        weights.append(np.tile(np.where(keep, cfg.symmetry_weight, 0.0), 3))
    return ShapeObservations(
        queries=np.concatenate(queries).astype(np.float32),
        targets=np.concatenate(targets).astype(np.float32),
        lower_bound=np.concatenate(bounds),
        weights=np.concatenate(weights).astype(np.float32),
        mirrored_dropped=dropped,
    )


def mirror_consistent(candidates: np.ndarray, points: np.ndarray, origins: np.ndarray, margin: float, rays_per_point: float = 1.5) -> np.ndarray:
    """``(C,)`` bool: which ``candidates: (C, 3)`` no camera's free space contradicts.

    ``points: (M, 3)`` were seen from ``origins: (M, 3)`` (one camera or several). For each camera,
    a candidate is contradicted when an observed point lies on (nearly) the same ray from that camera
    more than ``margin`` farther away: the ray reached it through the candidate. "Nearly the same
    ray": within ``rays_per_point`` times the median angular spacing of that camera's points.
    """
    keep = np.ones(len(candidates), dtype=bool)
    cameras, which = np.unique(np.asarray(origins, dtype=np.float64), axis=0, return_inverse=True)
    for k, camera in enumerate(cameras):
        seen = points[which.reshape(-1) == k] - camera
        if len(seen) < 2:
            continue
        depth = np.linalg.norm(seen, axis=1)
        tree = cKDTree(seen / depth[:, None])
        spacing, _ = tree.query(seen / depth[:, None], k=2)
        radius = rays_per_point * float(np.median(spacing[:, 1]))
        to = candidates - camera
        cand_depth = np.linalg.norm(to, axis=1)
        near = tree.query_ball_point(to / cand_depth[:, None], r=radius)
        farthest = np.array([depth[n].max() if n else -np.inf for n in near])
        keep &= ~(farthest > cand_depth + margin)
    return keep


def _sphere_chord(origin: np.ndarray, directions: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Where the rays ``origin + t * directions`` (``(R, 3)`` each, unit directions) enter and leave the
    sphere of ``radius`` about the origin, ``t >= 0``: ``(R,)`` and ``(R,)``; ``t_out <= t_in`` for a miss."""
    b = np.sum(directions * origin, axis=1)
    c = np.sum(origin * origin, axis=1) - radius**2
    disc = b * b - c
    root = np.sqrt(np.maximum(disc, 0.0))
    t_in, t_out = np.maximum(-b - root, 0.0), -b + root
    return t_in, np.where(disc > 0, t_out, -1.0)


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
