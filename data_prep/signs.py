"""Robust inside/outside signs for meshes that are not watertight, and how sure each one is.

Method (chosen for ShapeNet-style input; the README's "Signs" section has the measurements):

1. :func:`data_prep.repair.clean_mesh` merges vertices and removes duplicated and double-sided faces,
   which would otherwise cancel out (in a parity count or a winding number).
2. A visibility pass (rays from 100 directions, DeepSDF's idea) finds the faces seen from outside
   and the side they are seen from. Components with no visible face (interior parts) are dropped;
   every seen face is turned to face its viewers, which repairs flipped faces.
3. The sign itself:
   - **parity vote** (:func:`vote_inside`) when the cleaned mesh is watertight: up to ``rays`` rays in
     fixed, well-spread directions count their crossings; odd votes "inside" (three rays first, the
     rest only where those disagree). Exact for closed surfaces and blind to orientation.
     Agreement = fraction of the rays cast on the majority side.
   - **generalised winding number** (:func:`winding_inside`, libigl's fast winding number) when it is
     not: holes, open sheets and overlapping parts make parity meaningless, while the winding number
     of a (visibility-oriented) soup degrades gracefully — about 1 inside, 0 outside, fractional
     only near holes and sheets. Agreement = ``0.5 + min(|w - 0.5|, 0.5)``.
   Samples whose agreement is below ``min_agreement`` are dropped, not guessed, and counted in QA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_prep.repair import fibonacci_sphere
from sdf_autodec import optional
from sdf_autodec.optional import open3d


@dataclass
class SignConfig:
    """Ray-parity voting."""

    rays: int = 9
    """Rays per query point (odd, so there is always a majority)."""
    chunk: int = 2_000_000
    """Rays cast per call (bounds memory)."""


def ray_directions(count: int, seed: int) -> np.ndarray:
    """``(count, 3)`` unit directions: a Fibonacci sphere under a seeded random rotation (so rays are
    not aligned with the axes, where they would run along the faces of axis-aligned parts)."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.diag(r))
    return fibonacci_sphere(count) @ rotation.T


def _parity_votes(scene, points: np.ndarray, directions: np.ndarray, chunk: int) -> np.ndarray:
    """Per point, how many of ``directions`` see an odd number of crossings, ``(N,)`` int."""
    o3d = open3d()
    votes = np.zeros(len(points), dtype=np.int32)
    per_chunk = max(1, chunk // len(directions))
    for start in range(0, len(points), per_chunk):
        p = np.asarray(points[start : start + per_chunk], dtype=np.float32)
        rays = np.concatenate([np.repeat(p, len(directions), axis=0), np.tile(directions, (len(p), 1))], axis=1)  # point-major
        counts = scene.count_intersections(o3d.core.Tensor(rays), nthreads=optional.OPEN3D_THREADS).numpy().reshape(len(p), len(directions))
        votes[start : start + len(p)] = (counts % 2 == 1).sum(axis=1)
    return votes


def vote_inside(scene, points: np.ndarray, cfg: SignConfig, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Majority-of-parity inside test. ``points: (N, 3)`` → ``inside: (N,)`` bool, ``agreement: (N,)``
    in [0.5, 1] (fraction of the rays cast that agree with the majority).

    Adaptive: three well-spread rays first; only points on which they disagree get the other
    ``rays - 3``. On a closed surface almost every point is settled by the first three, so the
    cost is about 3 rays per point, and disputed points still get the full vote.
    """
    if cfg.rays < 1 or cfg.rays % 2 == 0:
        raise ValueError(f"rays must be a positive odd number, got {cfg.rays}")
    directions = ray_directions(cfg.rays, seed).astype(np.float32)  # (R, 3)
    first = np.unique(np.linspace(0, cfg.rays - 1, min(3, cfg.rays)).round().astype(int))  # spread along the spiral
    rest = np.setdiff1d(np.arange(cfg.rays), first)
    votes = _parity_votes(scene, points, directions[first], cfg.chunk)
    cast = np.full(len(points), len(first), dtype=np.int32)
    disputed = np.flatnonzero((votes > 0) & (votes < len(first)))
    if len(disputed) and len(rest):
        votes[disputed] += _parity_votes(scene, points[disputed], directions[rest], cfg.chunk)
        cast[disputed] = cfg.rays
    inside = votes * 2 > cast
    agreement = np.maximum(votes, cast - votes) / cast
    return inside, agreement


def unsigned_distance(scene, points: np.ndarray) -> np.ndarray:
    """Exact distance from ``points: (N, 3)`` to the closest surface point, ``(N,)`` float32."""
    o3d = open3d()
    return scene.compute_distance(o3d.core.Tensor(np.ascontiguousarray(points, dtype=np.float32)), nthreads=optional.OPEN3D_THREADS).numpy()


def winding_inside(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalised winding number test (libigl's fast, Barnes-Hut approximation).
    ``points: (N, 3)`` → ``inside: (N,)`` bool (w > 0.5), ``agreement: (N,)`` in [0.5, 1]."""
    import igl

    w = igl.fast_winding_number(
        np.ascontiguousarray(vertices, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64), np.ascontiguousarray(points, dtype=np.float64)
    )
    return w > 0.5, 0.5 + np.minimum(np.abs(w - 0.5), 0.5)
