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

from data_prep.sampling import raycasting_scene
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


def view_rays(centre: np.ndarray, radius: float, directions: np.ndarray, resolution: int) -> np.ndarray:
    """Parallel rays looking at a sphere of ``radius`` about ``centre``: ``resolution``² per direction
    in ``directions: (V, 3)``, on a square grid facing it from ``2 * radius`` away. ``(V * resolution², 6)``
    float32 (origin, direction), view-major, grid row-major."""
    s = np.linspace(-radius, radius, resolution)
    pairs = [perpendicular_pair(d) for d in directions]
    across = (s[None, :, None] * np.array([p[0] for p in pairs])[:, None, :]).astype(np.float32)  # (V, R, 3)
    down = (s[None, :, None] * np.array([p[1] for p in pairs])[:, None, :]).astype(np.float32)
    row_starts = (centre + 2 * radius * directions).astype(np.float32)[:, None, :] + across  # (V, R, 3)
    towards = -directions.astype(np.float32)
    rays = np.empty((len(directions), resolution, resolution, 6), dtype=np.float32)
    for k in range(3):  # one coordinate at a time: numpy broadcasts long rows far faster than (..., 3) ones
        np.add(row_starts[:, :, None, k], down[:, None, :, k], out=rays[..., k])
        rays[..., 3 + k] = towards[:, k, None, None]
    return rays.reshape(-1, 6)


def face_visibility(mesh: trimesh.Trimesh, views: int = 100, resolution: int = 128, scene=None, chunk: int = 300_000) -> FaceVisibility:
    """Cast ``resolution``² parallel rays from each of ``views`` directions (a Fibonacci sphere) at the
    mesh and count, per face, first hits on its front and on its back side. Rays are cast about
    ``chunk`` at a time (whole views), which bounds memory and keeps them in cache."""
    o3d = open3d()
    scene = scene if scene is not None else raycasting_scene(mesh)
    directions = fibonacci_sphere(views)  # (V, 3): from the shape towards each camera
    centre = 0.5 * (mesh.bounds[0] + mesh.bounds[1])
    radius = float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0])) * 0.5 * 1.05
    faces_camera = (np.asarray(mesh.face_normals) @ directions.T > 0).ravel()  # (F * V,): face f's front turned to camera v
    seen = np.zeros(2 * len(mesh.faces), dtype=np.int64)  # first hits, face-major: (back, front) per face
    per_chunk = max(1, chunk // resolution**2)
    for first in range(0, views, per_chunk):
        batch = directions[first : first + per_chunk]
        rays = view_rays(centre, radius, batch, resolution)
        ids = scene.cast_rays(o3d.core.Tensor.from_numpy(rays), nthreads=optional.THREADS)["primitive_ids"].numpy()
        hit = np.flatnonzero(ids != scene.INVALID_ID)
        face = ids[hit].astype(np.int64)
        view = first + hit // resolution**2
        seen += np.bincount(2 * face + faces_camera[face * views + view], minlength=len(seen))
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
