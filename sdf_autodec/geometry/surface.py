"""Queries against a surface given as triangles or as an oriented point cloud (libigl + scipy).

- :func:`inside_mesh`: generalised winding number of a triangle soup, ``|w| > 0.5``. Robust to holes
  (a box with a face missing still encloses its volume: the hole subtends at most half of the
  sphere seen from inside), open sheets and a globally inverted orientation (hence ``|w|``).
- :func:`inside_points`: the same test for an oriented point cloud (libigl's fast winding number
  for points: each point is a dipole weighted by its area, Barill et al. 2018), with one addition.
  Within about two sample spacings of the cloud the point-dipole sum is unreliable — inside a
  slab thinner than the spacing (a table top) it falls to about 0.3 — so there the sign comes from
  the oriented samples themselves: the offset of the query from its 3 nearest samples along their
  normals, an inverse-square-distance weighted vote (negative = inside, Hoppe et al. 1992). Normals
  must point outwards.
- :func:`mesh_distance`: exact unsigned distance from points to a triangle soup (AABB tree).
- :func:`surfel_distance`: distance to the surface an oriented cloud samples (each sample a disc),
  nearly free of the sampling density's bias that the distance to the nearest sample has.
- :func:`orient_normals`: outward signs for the normals of a cloud sampled on a closed surface.

Every function is pure: arrays in, arrays out; nothing is cached between calls.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

AREA_NEIGHBOURS = 16
"""Neighbours used to estimate the area a cloud sample stands for: ``π r² / k`` with ``r`` the
distance to its ``k``-th neighbour (exact on average for a uniform sampling)."""

NEAR_VOTE_NEIGHBOURS = 3
"""Samples whose oriented planes vote on the sign of a query close to the cloud."""


def _f64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _check_points(name: str, a: np.ndarray) -> np.ndarray:
    a = _f64(a)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {a.shape}")
    return a


def winding_number_mesh(vertices: np.ndarray, faces: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Generalised winding number of the triangles ``faces: (F, 3)`` over ``vertices: (V, 3)`` at
    ``queries: (Q, 3)`` → ``(Q,)`` (about 1 inside an outward-oriented closed surface, 0 outside)."""
    import igl

    queries = _check_points("queries", queries)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if len(faces) == 0 or len(queries) == 0:
        return np.zeros(len(queries))
    return np.asarray(igl.fast_winding_number(_check_points("vertices", vertices), faces, queries))


def inside_mesh(vertices: np.ndarray, faces: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``|winding number| > 0.5``: ``queries: (Q, 3)`` → ``(Q,)`` bool."""
    return np.abs(winding_number_mesh(vertices, faces, queries)) > 0.5


def deduplicate(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated points (libigl's point octree never terminates on them: float16 clouds have
    some) and non-finite rows; normals are made unit length. ``(P, 3), (P, 3)`` → ``(P', 3), (P', 3)``."""
    points, normals = _check_points("points", points), _check_points("normals", normals)
    if points.shape != normals.shape:
        raise ValueError(f"points {points.shape} and normals {normals.shape} differ in shape")
    length = np.linalg.norm(normals, axis=1)
    keep = np.isfinite(points).all(axis=1) & np.isfinite(normals).all(axis=1) & (length > 0)
    points, normals = points[keep], normals[keep] / length[keep, None]
    _, first = np.unique(points, axis=0, return_index=True)
    first.sort()
    return points[first], normals[first]


def point_areas(points: np.ndarray, k: int = AREA_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Area each sample of ``points: (P, 3)`` stands for, ``(P,)``, and the radius of its ``k``
    nearest neighbours, ``(P,)`` (``area = π r² / k``)."""
    points = _check_points("points", points)
    k = min(k, len(points) - 1)
    if k < 1:
        raise ValueError("need at least 2 points to estimate point areas")
    dist, _ = cKDTree(points).query(points, k=k + 1, workers=-1)  # first neighbour: the point itself
    radius = dist[:, -1]
    return np.pi * radius**2 / k, radius


def winding_number_points(points: np.ndarray, normals: np.ndarray, queries: np.ndarray, areas: np.ndarray | None = None) -> np.ndarray:
    """Fast winding number of an oriented cloud ``points, normals: (P, 3)`` (outward, deduplicated:
    see :func:`deduplicate`) at ``queries: (Q, 3)`` → ``(Q,)``; ``areas: (P,)`` default: :func:`point_areas`."""
    import igl

    points, normals, queries = _check_points("points", points), _check_points("normals", normals), _check_points("queries", queries)
    if len(queries) == 0:
        return np.zeros(0)
    if areas is None:
        areas, _ = point_areas(points)
    return np.asarray(igl.fast_winding_number(points, normals, _f64(areas), queries))


def inside_points(points: np.ndarray, normals: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Inside test of ``queries: (Q, 3)`` against the oriented cloud ``points, normals: (P, 3)``
    (outward normals) → ``(Q,)`` bool: winding number > 0.5 away from the cloud, the vote of the
    nearest samples' tangent planes within the ``AREA_NEIGHBOURS``-radius of the nearest sample."""
    points, normals = deduplicate(points, normals)
    queries = _check_points("queries", queries)
    areas, radius = point_areas(points)
    k = min(NEAR_VOTE_NEIGHBOURS, len(points))
    dist, index = cKDTree(points).query(queries, k=k, workers=-1)
    dist, index = dist.reshape(len(queries), k), index.reshape(len(queries), k)
    near = dist[:, 0] < radius[index[:, 0]]
    offset = np.einsum("qkj,qkj->qk", queries[near, None, :] - points[index[near]], normals[index[near]])  # < 0: behind the plane
    weight = 1.0 / np.maximum(dist[near], 1e-12) ** 2
    inside = np.zeros(len(queries), dtype=bool)
    inside[near] = np.sum(weight * -np.sign(offset), axis=1) > 0
    far = ~near
    inside[far] = winding_number_points(points, normals, queries[far], areas) > 0.5
    return inside


def orient_normals(points: np.ndarray, normals: np.ndarray, voxel: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flip the ``normals: (P, 3)`` of a cloud ``points: (P, 3)`` sampled on a CLOSED surface so
    that they point outwards; their lines are kept, only signs change (normals come back unit
    length). Returns the normals and a ``(P,)`` bool mask of the samples whose side could not be
    decided (left as they were).

    Needed for clouds whose normals have arbitrary signs (the Occupancy Networks / DVR
    ``pointcloud.npz``: neighbouring samples on one face disagree about half of the time).

    1. **Enclosed space.** The samples are rasterised into voxels of edge ``voxel`` (default: 3x the
       median nearest-neighbour spacing, so that random gaps between samples do not open the
       wall) and dilated by one voxel into a wall; empty voxels not connected to the border of the
       grid are *enclosed*. A sample that finds an enclosed voxel 2-4 voxels along one of ``±n`` and
       none along the other has its inside on that side. Only "enclosed" is trusted: "connected to
       the border" can also be reached through a part thinner than the probe distance.
    2. **Thin parts** have no enclosed voxel. Along each of ``±n``, from 1.1 to 5 voxels, the
       sample looks for the nearest parallel face (a sample within one voxel of the line whose
       normal is within 45 degrees; its depth measured along ``n``): the inside is the side whose
       face is nearer (a plate is thinner than the gap beside it), or the only side that has one.
    3. Samples still undecided follow their nearest decided neighbours on the same face (parallel
       normal, within half a spacing of the tangent plane: not the other face of a thin part).
    4. What remains is mostly the rim of a thin part: its normal points away from the centroid of
       its 32 nearest samples.

    Measured against the depth maps of the 20 DVR tables (a sample a camera sees faces it): 97.7% of
    the seen samples right on average; single open panels (no inside at all) stay ambiguous.
    """
    from scipy import ndimage

    points, normals = _check_points("points", points), _check_points("normals", normals)
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    tree = cKDTree(points)
    nn, _ = tree.query(points, k=2, workers=-1)
    spacing = float(np.median(nn[:, 1]))
    h = voxel if voxel is not None else 3.0 * spacing
    if not h > 0:
        raise ValueError("cannot orient a cloud whose points coincide")
    lo = points.min(axis=0) - 6 * h
    shape = np.ceil((points.max(axis=0) + 6 * h - lo) / h).astype(int) + 1
    if np.prod(shape, dtype=np.int64) > 64_000_000:
        raise ValueError(f"orienting normals would need a {tuple(shape)} voxel grid; pass a larger voxel size")
    occupied = np.zeros(tuple(shape), dtype=bool)
    occupied[tuple(np.floor((points - lo) / h).astype(int).T)] = True
    wall = ndimage.binary_dilation(occupied, structure=np.ones((3, 3, 3), dtype=bool))
    labels, _ = ndimage.label(~wall)
    border = np.unique(np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel(), labels[:, :, [0, -1]].ravel()]))
    enclosed = ~wall & ~np.isin(labels, border)

    def sees_enclosed(direction: float) -> np.ndarray:
        state = np.zeros(len(points), dtype=np.int8)  # 0 wall so far, 1 enclosed, -1 other empty space
        for steps in (2, 3, 4):
            cell = np.clip(np.floor((points + direction * steps * h * normals - lo) / h).astype(int), 0, shape - 1)
            here = np.where(wall[tuple(cell.T)], 0, np.where(enclosed[tuple(cell.T)], 1, -1))
            state = np.where(state == 0, here, state)
        return state == 1

    plus, minus = sees_enclosed(1.0), sees_enclosed(-1.0)
    sign = np.where(minus & ~plus, 1.0, np.where(plus & ~minus, -1.0, 0.0))  # +1: n already points outwards

    undecided = np.flatnonzero(sign == 0)
    if len(undecided):
        # a face counts when one of its samples is within h of the line: start past h, beyond the sample's own face
        distances = np.arange(1.1 * h, 5.0 * h, spacing)

        def nearest_face(direction: float) -> np.ndarray:
            found = np.full(len(undecided), np.inf)
            p, n = points[undecided], normals[undecided]
            for t in distances:
                active = np.flatnonzero(found > t - h)  # a hit from here on lies at least t - h away
                d, j = tree.query(p[active] + direction * t * n[active], k=1, distance_upper_bound=h, workers=-1)
                ok = np.isfinite(d)
                hit, j = active[ok], j[ok]
                keep = np.abs(np.sum(normals[j] * n[hit], axis=1)) > 0.7
                hit, j = hit[keep], j[keep]
                depth = direction * np.sum((points[j] - p[hit]) * n[hit], axis=1)  # how far along the line that face is
                found[hit] = np.minimum(found[hit], np.where(depth > 0.5 * spacing, depth, np.inf))
            return found

        ahead, behind = nearest_face(1.0), nearest_face(-1.0)
        sign[undecided] = np.where(behind < ahead, 1.0, np.where(ahead < behind, -1.0, 0.0))

    for _ in range(8):
        undecided, decided = np.flatnonzero(sign == 0), np.flatnonzero(sign != 0)
        if len(undecided) == 0 or len(decided) == 0:
            break
        k = min(16, len(decided))
        dist, idx = cKDTree(points[decided]).query(points[undecided], k=k, workers=-1)
        dist, idx = dist.reshape(len(undecided), k), decided[idx.reshape(len(undecided), k)]
        n = normals[undecided]
        agree = np.einsum("uj,ukj->uk", n, normals[idx] * sign[idx, None])  # > 0: same way as an oriented neighbour
        offset = np.abs(np.einsum("ukj,uj->uk", points[idx] - points[undecided, None, :], n))
        same_face = (np.abs(agree) > 0.7) & (offset < 0.5 * spacing)  # not the other face of a thin part
        vote = np.sign(np.sum(np.where(same_face, np.sign(agree) / np.maximum(dist, 1e-12), 0.0), axis=1))
        if not np.any(vote):
            break
        sign[undecided] = vote
    undecided = np.flatnonzero(sign == 0)
    if len(undecided):  # the rim of a thin part: its neighbours lie on its inner side
        k = min(32, len(points))
        _, idx = tree.query(points[undecided], k=k, workers=-1)
        away = np.einsum("uj,uj->u", normals[undecided], points[undecided] - points[idx.reshape(len(undecided), k)].mean(axis=1))
        sign[undecided] = np.where(np.abs(away) > 0.1 * spacing, np.sign(away), 0.0)
    unknown = sign == 0
    return normals * np.where(unknown, 1.0, sign)[:, None], unknown


SURFEL_NEIGHBOURS = 2
"""A sample's disc reaches its 2nd neighbour: random samples' discs then cover most (~86%) of the
surface, leaving small gaps, while a disc at an edge overhangs it by about one spacing only (on
shapes in the unit sphere with 30000 samples: 0.0002 for a query on the surface, against 0.017 for
the distance to the nearest sample; an edge overshoot of 0.016 reads 0.011)."""


def surfel_distance(points: np.ndarray, normals: np.ndarray, queries: np.ndarray, k: int = 8) -> np.ndarray:
    """Distance from ``queries: (Q, 3)`` to the surface that the samples ``points, normals: (P, 3)``
    stand for, each sample a disc (normal's sign irrelevant) reaching its ``SURFEL_NEIGHBOURS``-th
    neighbour; the nearest of the ``k`` nearest samples' discs → ``(Q,)``. Unlike the distance to the
    nearest sample, it does not grow with the spacing of the samples (a query on the surface is
    about 0 away, not half a spacing), so scores stop depending on how densely the truth is sampled."""
    points, normals, queries = _check_points("points", points), _check_points("normals", normals), _check_points("queries", queries)
    normals = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    tree = cKDTree(points)
    m = min(SURFEL_NEIGHBOURS, len(points) - 1)
    radius = tree.query(points, k=m + 1, workers=-1)[0][:, -1] if m >= 1 else np.zeros(len(points))
    k = min(k, len(points))
    _, idx = tree.query(queries, k=k, workers=-1)
    idx = idx.reshape(len(queries), k)
    offset = queries[:, None, :] - points[idx]  # (Q, k, 3)
    along = np.einsum("qkj,qkj->qk", offset, normals[idx])
    lateral = np.sqrt(np.maximum(np.einsum("qkj,qkj->qk", offset, offset) - along**2, 0.0))
    return np.sqrt(along**2 + np.maximum(lateral - radius[idx], 0.0) ** 2).min(axis=1)


def mesh_distance(vertices: np.ndarray, faces: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact distance from ``queries: (Q, 3)`` to the triangles ``faces: (F, 3)`` → ``(Q,)``."""
    import igl

    faces = np.ascontiguousarray(faces, dtype=np.int64)
    if len(faces) == 0:
        raise ValueError("mesh has no faces")
    squared, _, _ = igl.point_mesh_squared_distance(_check_points("queries", queries), _check_points("vertices", vertices), faces)
    return np.sqrt(np.asarray(squared))
