"""Robust inside/outside signs for meshes that are not watertight, and how sure each one is.

Method (chosen for ShapeNet-style input; the README's "Signs" section has the measurements):

1. :func:`data_prep.repair.clean_mesh` merges vertices and removes duplicated and double-sided faces,
   which would otherwise cancel out (in a parity count or a winding number).
2. A visibility pass (rays from 100 directions, DeepSDF's idea) finds the faces seen from outside
   and the side they are seen from. Components with no visible face (interior parts) are dropped;
   every seen face is turned to face its viewers, which repairs flipped faces.
3. The sign itself, from the cheapest method that is exact for what the mesh turned out to be:
   - **pseudo-normals** (:func:`pseudonormal_inside`) when the cleaned mesh is closed and consistently
     oriented: the sign of ``(p - c) · n`` with ``c`` the closest surface point (the same query that
     gives the distance) and ``n`` the angle-weighted pseudo-normal of the face, edge or vertex ``c``
     lies on (Bærentzen & Aanæs 2005) — exact for closed surfaces, at almost no extra cost. Checked
     against the winding number on a sample of the points: overlapping closed parts (where it is
     wrong) send the mesh to the winding number.
   - **parity vote** (:func:`vote_inside`) when it is closed but not consistently oriented: up to
     ``rays`` rays in fixed, well-spread directions count their crossings; odd votes "inside" (three
     rays first, the rest only where those disagree). Blind to orientation.
     Agreement = fraction of the rays cast on the majority side.
   - **generalised winding number** (:func:`winding_inside`, libigl's fast winding number) when it is
     not closed: holes, open sheets and overlapping parts make parity meaningless, while the winding
     number of a (visibility-oriented) soup degrades gracefully — about 1 inside, 0 outside,
     fractional only near holes and sheets. Agreement = ``0.5 + min(|w - 0.5|, 0.5)``. It is
     evaluated only where a defect (open, non-manifold or inconsistent edge) is near enough to fool
     the pseudo-normals (:func:`near_defects`); elsewhere the pseudo-normals decide, again checked
     against the winding number on a sample, with a fall-back to the winding number everywhere.
   Samples whose agreement is below ``min_agreement`` are dropped, not guessed, and counted in QA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import trimesh

from data_prep.raycast import ClosestPoints, closest_points
from sdf_autodec import optional
from sdf_autodec.geometry.frames import fibonacci_sphere
from sdf_autodec.optional import open3d


SIGN_METHODS = ("auto", "pseudonormal", "parity", "winding")


@dataclass
class SignConfig:
    """How the inside of a mesh is decided (``prep``'s ``samples.sign.*``)."""

    method: str = "auto"
    """``auto``, ``pseudonormal``, ``parity`` or ``winding``. ``auto``: pseudo-normals if the cleaned mesh
    is closed and consistently oriented, a parity vote if it is closed only, else the winding number."""
    check_fraction: float = 0.05
    """Share of the samples whose pseudo-normal sign is checked against the winding number; any
    disagreement the winding number is sure of (``min_agreement``) (overlapping closed parts, for one) sends the whole mesh to the winding number."""
    winding_near_defects_only: bool = True
    """Meshes signed by the winding number: evaluate it only near holes and inconsistent faces (and
    on the check sample), with pseudo-normals elsewhere; ``false`` evaluates it everywhere (slower)."""
    max_check_mismatch: float = 0.0
    """Share of checked pseudo-normal signs a sure winding number may contradict, on meshes
    with defects, before the winding number decides every sample."""
    rays: int = 9
    """Rays voting on each sample's sign (odd, so there is always a majority), for the parity vote."""
    min_agreement: float = 0.75
    """Samples whose majority is weaker than this fraction of the rays are dropped."""
    chunk: int = 2_000_000
    """Rays cast per call of the parity vote (bounds memory)."""


class SignableSurface(Protocol):
    """What :func:`robust_sign` needs of a surface (``data_prep.sampling.OuterSurface`` is one)."""

    outer: trimesh.Trimesh  # the mesh whose inside is decided
    scene: object  # Open3D RaycastingScene of ``outer``
    method: str  # "pseudonormal", "parity" or "winding"


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
        counts = scene.count_intersections(o3d.core.Tensor.from_numpy(rays), nthreads=optional.THREADS).numpy().reshape(len(p), len(directions))
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
class PseudoNormals:
    """Angle-weighted pseudo-normals (Bærentzen & Aanæs 2005) of a closed, consistently oriented mesh."""

    faces: np.ndarray  # (F, 3) vertex indices
    face: np.ndarray  # (F, 3) unit face normals
    edge: np.ndarray  # (F, 3, 3) normal of face edge j = (v_j, v_j+1): sum of its two faces' normals
    vertex: np.ndarray  # (V, 3) angle-weighted sum of the normals of the faces around each vertex


def pseudo_normals(mesh) -> PseudoNormals:
    """Pseudo-normals of ``mesh`` (a ``trimesh.Trimesh``; closed and consistently oriented outwards)."""
    faces = np.asarray(mesh.faces, dtype=np.int64)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    face_normals = np.asarray(mesh.face_normals, dtype=np.float64)
    start, end = faces, np.roll(faces, -1, axis=1)  # (F, 3) each: face edge j = (v_j, v_j+1)
    key = (np.minimum(start, end) * len(vertices) + np.maximum(start, end)).ravel()  # (3F,) the same for both sides of an edge
    _, edge_id = np.unique(key, return_inverse=True)
    corner = vertices[faces]  # (F, 3, 3)
    out_edge, in_edge = corner[:, [1, 2, 0]] - corner, corner[:, [2, 0, 1]] - corner  # from each corner to the next two
    cosine = np.einsum("fjk,fjk->fj", out_edge, in_edge) / (np.linalg.norm(out_edge, axis=2) * np.linalg.norm(in_edge, axis=2))
    angle = np.arccos(np.clip(np.nan_to_num(cosine), -1.0, 1.0))  # (F, 3) interior angle at each corner
    edge = np.empty((len(faces) * 3, 3))
    vertex = np.empty((len(vertices), 3))
    for k in range(3):  # bincount sums far faster than np.add.at
        edge[:, k] = np.bincount(edge_id, weights=np.repeat(face_normals[:, k], 3))[edge_id]
        vertex[:, k] = np.bincount(faces.ravel(), weights=(angle * face_normals[:, k, None]).ravel(), minlength=len(vertices))
    return PseudoNormals(faces, face_normals, edge.reshape(-1, 3, 3), vertex)


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
    delta = [np.asarray(points[:, k], dtype=np.float64) - closest.point[:, k] for k in range(3)]  # columns: fast gathers
    dot = sum(delta[k] * normals.face[:, k].take(f) for k in range(3))  # (N,) against the face normal
    on_edge = np.flatnonzero(count == 1)
    opposite = np.argmax(small[on_edge], axis=1)  # the vertex whose coordinate vanishes
    on_vertex = np.flatnonzero(count >= 2)
    corner = np.argmax(b[on_vertex], axis=1)
    for where, n in (
        (on_edge, normals.edge[f[on_edge], (opposite + 1) % 3]),
        (on_vertex, normals.vertex[normals.faces[f[on_vertex], corner]]),
    ):
        dot[where] = sum(delta[k][where] * n[:, k] for k in range(3))
    return dot < 0


@dataclass
class SurfaceDefects:
    """Where a mesh is not a closed, consistently oriented surface."""

    segments: np.ndarray  # (T, 2, 3) end points of edges that are open, non-manifold or inconsistently oriented
    bad_faces: np.ndarray  # (F,) bool: faces with an inconsistently oriented or non-manifold edge


def surface_defects(vertices: np.ndarray, faces: np.ndarray) -> SurfaceDefects:
    """Edges not shared by exactly two faces in opposite directions, and the faces that hold a
    non-manifold or inconsistent one (a hole's rim alone does not make its faces bad)."""
    faces = np.asarray(faces, dtype=np.int64)
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)  # (3F, 2): face edge j = (v_j, v_j+1)
    n = int(faces.max()) + 1 if len(faces) else 0
    key, reverse = directed[:, 0] * n + directed[:, 1], directed[:, 1] * n + directed[:, 0]
    unique, counts = np.unique(key, return_counts=True)

    def count(k):
        at = np.clip(np.searchsorted(unique, k), 0, len(unique) - 1)
        return np.where(unique[at] == k, counts[at], 0)

    same, opposite = count(key), count(reverse)
    good = (same == 1) & (opposite == 1)
    open_edge = (same == 1) & (opposite == 0)
    bad_faces = (~good & ~open_edge).reshape(-1, 3).any(axis=1)
    return SurfaceDefects(np.asarray(vertices, dtype=np.float64)[directed[~good]], bad_faces)


def near_defects(defects: SurfaceDefects, vertices: np.ndarray, faces: np.ndarray, closest: ClosestPoints, reach: float = 3.0, spacing: float = 0.005) -> np.ndarray:
    """``(N,)`` bool: samples whose pseudo-normal sign can be fooled by a defect — the closest point
    lies on a bad face, or a defective edge may be nearer to it than ``reach`` times the sample's
    distance to the surface. Conservative and cheap: per face, the gap between its centroid and the
    nearest defect (edges sampled every ``spacing``) less the face's radius bounds the gap from any
    of its points (distances in the mesh's units)."""
    from scipy.spatial import cKDTree

    risky = defects.bad_faces[closest.face]
    if len(defects.segments) == 0:
        return risky
    a, b = defects.segments[:, 0], defects.segments[:, 1]
    steps = np.maximum(1, np.ceil(np.linalg.norm(b - a, axis=1) / spacing).astype(np.int64))
    seg = np.repeat(np.arange(len(a)), steps + 1)
    on_edges = a[seg] + _ramp(steps)[:, None] * (b - a)[seg]
    triangles = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]  # (F, 3, 3)
    centroid = triangles.mean(axis=1)
    face_radius = np.linalg.norm(triangles - centroid[:, None, :], axis=2).max(axis=1)
    used = np.unique(closest.face)
    gap = np.full(len(faces), np.inf)
    gap[used] = cKDTree(on_edges).query(centroid[used], workers=optional.THREADS or -1)[0] - face_radius[used]
    return risky | (gap[closest.face] < reach * closest.distance + spacing)


def _ramp(steps: np.ndarray) -> np.ndarray:
    """``concatenate([linspace(0, 1, s + 1) for s in steps])`` without the Python loop."""
    start = np.repeat(np.cumsum(steps + 1) - (steps + 1), steps + 1)
    return (np.arange(int((steps + 1).sum())) - start) / np.repeat(steps, steps + 1)


@dataclass
class Signs:
    """Inside flags of sample points and how sure each one is."""

    inside: np.ndarray  # (N,) bool
    agreement: np.ndarray  # (N,) float32 in [0.5, 1]
    method: str  # the method that decided them (pseudonormal falls back to winding when its check fails)
    check_mismatch: float | None = None  # share of checked pseudo-normal signs a sure winding number contradicts
    winding_share: float | None = None  # winding: share of the samples whose sign the winding number decided


def _check_sample(count: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(count, min(count, max(1, int(np.ceil(fraction * count)))), replace=False)


def _winding_near_defects(surface: SignableSurface, points: np.ndarray, cfg: SignConfig, seed: int, closest) -> Signs:
    """Signs on a mesh with holes or inconsistent faces: the winding number where a defect is near
    (see :func:`data_prep.signs.near_defects`), pseudo-normals elsewhere, checked against the winding
    number on ``check_fraction`` of the others; more than ``max_check_mismatch`` of those
    contradicted sends every sample to the winding number."""
    outer = surface.outer
    risky = near_defects(surface_defects(outer.vertices, outer.faces), outer.vertices, outer.faces, closest)
    safe = np.flatnonzero(~risky)
    check = safe[_check_sample(len(safe), cfg.check_fraction, np.random.default_rng(seed))] if len(safe) else safe
    wound_idx = np.concatenate([np.flatnonzero(risky), check])
    wound, wound_agreement = winding_inside(outer.vertices, outer.faces, points[wound_idx])
    inside = pseudonormal_inside(pseudo_normals(outer), points, closest)
    confident = wound_agreement[-len(check):] >= cfg.min_agreement if len(check) else np.zeros(0, bool)
    mismatch = float(((wound[-len(check):] != inside[check]) & confident).mean()) if len(check) else 0.0
    if mismatch > cfg.max_check_mismatch:
        inside, agreement = winding_inside(outer.vertices, outer.faces, points)
        return Signs(inside, agreement.astype(np.float32), "winding", mismatch, 1.0)
    agreement = np.ones(len(points), dtype=np.float32)
    inside[wound_idx], agreement[wound_idx] = wound, wound_agreement
    return Signs(inside, agreement, "winding", mismatch, round(float(risky.mean()), 6))


def robust_sign(surface: SignableSurface, points: np.ndarray, cfg: SignConfig, seed: int, closest=None) -> Signs:
    """Inside test of ``points: (N, 3)`` on ``surface`` by its method. ``closest``: the points'
    :class:`data_prep.signs.ClosestPoints` on ``surface.outer`` if already computed."""
    if surface.method == "winding":
        if not cfg.winding_near_defects_only:
            inside, agreement = winding_inside(surface.outer.vertices, surface.outer.faces, points)
            return Signs(inside, agreement.astype(np.float32), "winding", winding_share=1.0)
        return _winding_near_defects(surface, points, cfg, seed, closest_points(surface.scene, points) if closest is None else closest)
    if surface.method == "pseudonormal":
        closest = closest_points(surface.scene, points) if closest is None else closest
        inside = pseudonormal_inside(pseudo_normals(surface.outer), points, closest)
        check = _check_sample(len(points), cfg.check_fraction, np.random.default_rng(seed))
        wound, agreement = winding_inside(surface.outer.vertices, surface.outer.faces, points[check])
        mismatch = (wound != inside[check]) & (agreement >= cfg.min_agreement)
        if not mismatch.any():
            return Signs(inside, np.ones(len(points), dtype=np.float32), "pseudonormal", 0.0)
        inside, agreement = winding_inside(surface.outer.vertices, surface.outer.faces, points)
        return Signs(inside, agreement.astype(np.float32), "winding", float(mismatch.mean()), 1.0)
    inside, agreement = vote_inside(surface.scene, points, cfg, seed)
    return Signs(inside, agreement.astype(np.float32), "parity")
