"""Mesh clean-up before signing: what real (ShapeNet-like) meshes need and watertight ones never notice.

- :func:`clean_mesh`: merge coincident vertices, drop degenerate faces, and drop duplicated faces
  whatever their winding (a double-sided face or a copied part would otherwise count twice in a
  ray-parity test and cancel itself out).
- :func:`face_visibility`: which faces can be seen from outside, and from which side, by casting
  rays from cameras on a sphere around the shape (DeepSDF's idea); components with no visible face
  are interior parts, and :func:`orient_by_visibility` turns every seen face towards its viewers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from data_prep.raycast import raycasting_scene
from sdf_autodec import optional
from sdf_autodec.geometry.frames import fibonacci_sphere, perpendicular_pair
from sdf_autodec.optional import open3d


@dataclass
class CleanReport:
    """What :func:`clean_mesh` changed."""

    merged_vertices: int
    degenerate_faces: int
    duplicate_faces: int


def clean_mesh(mesh: trimesh.Trimesh, merge_tolerance: float = 1e-7) -> tuple[trimesh.Trimesh, CleanReport]:
    """A copy of ``mesh`` with coincident vertices merged (within ``merge_tolerance`` of the shape's
    extent), zero-area faces and duplicated faces (same three vertices, any order) removed."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    scale = float(np.ptp(vertices, axis=0).max()) or 1.0
    keys = np.round(vertices / (scale * merge_tolerance)).astype(np.int64)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    faces = inverse[faces]
    vertices = vertices[first]
    areas = trimesh.triangles.area(vertices[faces])
    nondegenerate = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2]) & (areas > 0)
    kept = faces[nondegenerate]
    _, unique_index = np.unique(_unordered_face_keys(kept), axis=0, return_index=True)
    kept = kept[np.sort(unique_index)]
    report = CleanReport(
        merged_vertices=len(mesh.vertices) - len(vertices),
        degenerate_faces=int((~nondegenerate).sum()),
        duplicate_faces=int(nondegenerate.sum() - len(kept)),
    )
    return trimesh.Trimesh(vertices, kept, process=False), report


def _unordered_face_keys(faces: np.ndarray) -> np.ndarray:
    """A key per face that ignores the order of its vertices: ``(F,)`` int64 packing the sorted
    indices (21 bits each) where they fit, else the sorted ``(F, 3)`` rows (10x slower to unique)."""
    ordered = np.sort(faces, axis=1)
    if len(faces) == 0 or ordered[:, 2].max() >= 1 << 21:
        return ordered
    return (ordered[:, 0] << 42) | (ordered[:, 1] << 21) | ordered[:, 2]


@dataclass
class FaceVisibility:
    """How often each face was hit from its front (along -normal) and from its back, ``(F,)`` each."""

    front: np.ndarray
    back: np.ndarray

    @property
    def visible(self) -> np.ndarray:
        return (self.front + self.back) > 0


@dataclass
class ViewGrid:
    """The rays of one visibility camera: a square grid of ``resolution``² parallel rays, spacing
    ``2 * radius / (resolution - 1)``, looking along ``-direction`` at a sphere of ``radius`` about
    ``centre`` from ``2 * radius`` away; grid point ``(i, j)`` starts at
    ``centre + 2 * radius * direction + s_i * across + s_j * down``, ``s = linspace(-radius, radius)``."""

    direction: np.ndarray  # (3,) unit, from the shape towards the camera
    across: np.ndarray  # (3,) unit
    down: np.ndarray  # (3,) unit
    rows: slice  # grid rows i whose rays can hit the shape
    cols: slice  # grid columns j whose rays can hit the shape

    @property
    def count(self) -> int:
        return (self.rows.stop - self.rows.start) * (self.cols.stop - self.cols.start)


def view_grids(vertices: np.ndarray, views: int, resolution: int, chunk: int = 100_000) -> tuple[list[ViewGrid], np.ndarray, float]:
    """The ``views`` cameras of the visibility pass (a Fibonacci sphere), each cut down to the grid
    rows and columns that the shape's vertices project into: a ray outside that rectangle is
    parallel to the view and passes beside every face, so leaving it out changes no hit (and
    removes 61-77% of the rays on the PSB meshes). Returns the grids, the centre and the radius."""
    vertices = np.asarray(vertices, dtype=np.float64)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    centre, radius = 0.5 * (low + high), float(np.linalg.norm(high - low)) * 0.5 * 1.05
    directions = fibonacci_sphere(views)
    pairs = [perpendicular_pair(d) for d in directions]
    axes = np.array([p[0] for p in pairs] + [p[1] for p in pairs])  # (2V, 3): every view's across, then down
    lo, hi = np.full(2 * views, np.inf), np.full(2 * views, -np.inf)
    for first in range(0, len(vertices), chunk):  # bounded memory on huge meshes
        projected = (vertices[first : first + chunk] - centre) @ axes.T  # (n, 2V)
        lo, hi = np.minimum(lo, projected.min(axis=0)), np.maximum(hi, projected.max(axis=0))
    s = np.linspace(-radius, radius, resolution)
    slack = 1e-6 * radius  # rounding: keep a ray that grazes the outermost vertex
    first_in = np.searchsorted(s, lo - slack, side="left")
    last_out = np.searchsorted(s, hi + slack, side="right")
    grids = [
        ViewGrid(d, a, b, slice(int(first_in[v]), int(last_out[v])), slice(int(first_in[views + v]), int(last_out[views + v])))
        for v, (d, (a, b)) in enumerate(zip(directions, pairs))
    ]
    return grids, centre, radius


def grid_rays(grids: list[ViewGrid], centre: np.ndarray, radius: float, resolution: int) -> np.ndarray:
    """The rays of ``grids``, view after view, each row-major: ``(sum of counts, 6)`` float32 (origin, direction)."""
    s = np.linspace(-radius, radius, resolution)
    rays = np.empty((sum(g.count for g in grids), 6), dtype=np.float32)
    at = 0
    for g in grids:
        rows, cols = s[g.rows], s[g.cols]
        row_starts = (centre + 2 * radius * g.direction).astype(np.float32) + (rows[:, None] * g.across).astype(np.float32)  # (r, 3)
        down = (cols[:, None] * g.down).astype(np.float32)  # (c, 3)
        block = rays[at : at + g.count].reshape(len(rows), len(cols), 6)
        for k in range(3):  # one coordinate at a time: numpy broadcasts long rows far faster than (..., 3) ones
            np.add(row_starts[:, None, k], down[None, :, k], out=block[..., k])
            block[..., 3 + k] = -g.direction[k]
        at += g.count
    return rays


def face_visibility(mesh: trimesh.Trimesh, views: int = 100, resolution: int = 128, scene=None, chunk: int = 300_000) -> FaceVisibility:
    """Cast ``resolution``² parallel rays from each of ``views`` directions (a Fibonacci sphere) at the
    mesh and count, per face, first hits on its front and on its back side. Rays that cannot hit
    are not cast (:func:`view_grids`); the others are cast about ``chunk`` at a time (whole views),
    which bounds memory and keeps them in cache."""
    o3d = open3d()
    scene = scene if scene is not None else raycasting_scene(mesh)
    grids, centre, radius = view_grids(mesh.vertices, views, resolution)
    directions = np.array([g.direction for g in grids])  # (V, 3)
    faces_camera = (np.asarray(mesh.face_normals) @ directions.T > 0).ravel()  # (F * V,): face f's front turned to camera v
    seen = np.zeros(2 * len(mesh.faces), dtype=np.int64)  # first hits, face-major: (back, front) per face
    first = 0
    while first < views:
        last, count = first, 0
        while last < views and (count == 0 or count + grids[last].count <= chunk):
            count, last = count + grids[last].count, last + 1
        rays = grid_rays(grids[first:last], centre, radius, resolution)
        ids = scene.cast_rays(o3d.core.Tensor.from_numpy(rays), nthreads=optional.THREADS)["primitive_ids"].numpy()
        view = np.repeat(np.arange(first, last), [g.count for g in grids[first:last]])
        hit = np.flatnonzero(ids != scene.INVALID_ID)
        face = ids[hit].astype(np.int64)
        seen += np.bincount(2 * face + faces_camera[face * views + view[hit]], minlength=len(seen))
        first = last
    back, front = seen[0::2], seen[1::2]
    return FaceVisibility(front, back)


def orient_by_visibility(mesh: trimesh.Trimesh, vis: FaceVisibility) -> tuple[trimesh.Trimesh, int]:
    """Flip the faces seen more often from their back than from their front; returns the mesh and
    how many faces were flipped. Faces never seen keep their winding."""
    flip = vis.back > vis.front
    faces = np.asarray(mesh.faces).copy()
    faces[flip] = faces[flip][:, ::-1]
    return trimesh.Trimesh(mesh.vertices, faces, process=False), int(flip.sum())


def face_components(mesh: trimesh.Trimesh) -> np.ndarray:
    """Connected-component label of every face (faces sharing an edge are connected), ``(F,)``."""
    return trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces)) if len(mesh.faces) else np.zeros(0, int)
