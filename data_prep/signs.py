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


def winding_inside(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Generalised winding number test (libigl's fast, Barnes-Hut approximation).
    ``points: (N, 3)`` → ``inside: (N,)`` bool (w > 0.5), ``agreement: (N,)`` in [0.5, 1]."""
    import igl

    w = igl.fast_winding_number(
        np.ascontiguousarray(vertices, dtype=np.float64), np.ascontiguousarray(faces, dtype=np.int64), np.ascontiguousarray(points, dtype=np.float64)
    )
    return w > 0.5, 0.5 + np.minimum(np.abs(w - 0.5), 0.5)


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
    found = scene.compute_closest_points(o3d.core.Tensor(query), nthreads=optional.OPEN3D_THREADS)
    closest = found["points"].numpy()
    uv = found["primitive_uvs"].numpy()
    barycentric = np.column_stack([1.0 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]])
    distance = np.linalg.norm(query - closest, axis=1)
    return ClosestPoints(distance.astype(np.float32), closest, found["primitive_ids"].numpy().astype(np.int64), barycentric)


@dataclass
class PseudoNormals:
    """Angle-weighted pseudo-normals (Bærentzen & Aanæs 2005) of a closed, consistently oriented mesh."""

    faces: np.ndarray  # (F, 3) vertex indices
    face: np.ndarray  # (F, 3) unit face normals
    edge: np.ndarray  # (F, 3, 3) normal of face edge j = (v_j, v_j+1): sum of its two faces' normals
    vertex: np.ndarray  # (V, 3) angle-weighted sum of the normals of the faces around each vertex


def pseudo_normals(mesh) -> PseudoNormals:
    """Pseudo-normals of ``mesh`` (a ``trimesh.Trimesh``; closed and consistently oriented outwards)."""
    faces = np.asarray(mesh.faces, dtype=np.int64)
    face_normals = np.asarray(mesh.face_normals, dtype=np.float64)
    edge_of_face = np.asarray(mesh.faces_unique_edges)  # (F, 3): unique edge of (v0v1, v1v2, v2v0)
    edge = np.zeros((len(mesh.edges_unique), 3))
    np.add.at(edge, edge_of_face.ravel(), np.repeat(face_normals, 3, axis=0))
    vertex = np.zeros((len(mesh.vertices), 3))
    np.add.at(vertex, faces.ravel(), (np.asarray(mesh.face_angles)[..., None] * face_normals[:, None, :]).reshape(-1, 3))
    return PseudoNormals(faces, face_normals, edge[edge_of_face], vertex)


def pseudonormal_inside(normals: PseudoNormals, points: np.ndarray, closest: ClosestPoints, feature_tolerance: float = 1e-4) -> np.ndarray:
    """Inside test by the pseudo-normal at each closest point: ``(N, 3)`` → ``inside: (N,)`` bool.

    A point is inside when ``(p - c) · n < 0``, with ``c`` its closest surface point and ``n`` the
    normal of the feature ``c`` lies on: the face, an edge (sum of its two face normals) or a vertex
    (angle-weighted sum of its face normals). Exact for a closed, consistently oriented surface with
    no self-intersections, at the cost of the closest-point query the distance needs anyway; a
    barycentric coordinate below ``feature_tolerance`` puts ``c`` on an edge (or, with two, a vertex).
    """
    b = closest.barycentric
    small = b < feature_tolerance
    count = small.sum(axis=1)
    f = closest.face
    n = normals.face[f].copy()
    on_edge = np.flatnonzero(count == 1)
    opposite = np.argmax(small[on_edge], axis=1)  # the vertex whose coordinate vanishes
    n[on_edge] = normals.edge[f[on_edge], (opposite + 1) % 3]
    on_vertex = np.flatnonzero(count >= 2)
    corner = np.argmax(b[on_vertex], axis=1)
    n[on_vertex] = normals.vertex[normals.faces[f[on_vertex], corner]]
    return np.einsum("ij,ij->i", np.asarray(points, dtype=np.float64) - closest.point, n) < 0
