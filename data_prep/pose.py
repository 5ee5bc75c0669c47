"""Canonical pose of real meshes stored in arbitrary pose: which way is up, which way is front.

Real collections (PSB, InfoMR, ModelNet) keep each mesh in its author's pose; a decoder trained for
scans in a ShapeNet-style frame needs its training shapes in that frame. Everything here decides
from the surface alone, deterministically (area-uniform samples with a fixed seed), and returns the
rotated mesh with the evidence, so that a caller can list or refuse doubtful estimates.

Two frames:

- **Tables** (``upright_table``): y up, the longest horizontal side along z: the DVR/ONet frame of
  ShapeNet's tables (``benchmarks/dvr_tables.py``).
- **Chairs and vehicles** (``pose``): y up, the front toward +x (a chair's seat edge, a car's bonnet,
  an airplane's nose), the mirror plane z = 0: the frame of the PCN demo clouds
  (``../shared/data/scans/pcn_demo``; the demo chair's back lies at -x).

The rules of ``pose`` (``kind``: "airplane", "car" or "chair"; sofas, often deeper than they are
tall, are not measured and would break rule 2):

1. *Lateral*, the mirror normal: of the principal axes of the surface samples (a mirror plane's
   normal is one of them; when two variances are close, as a chair's width and depth can be, the
   axes can turn a few degrees off it), the one whose mirror plane through the centroid maps the surface
   best onto itself (median distance of the mirrored samples to the originals, as a fraction of the
   bounding diagonal: ``Pose.symmetry_error``). A vehicle's thinnest axis is never lateral (a car is
   lower than it is wide, an airplane flatter still; a van taller than it is wide comes out on its
   side).
2. *Up and front* lie in the mirror plane, along its dominant directions of surface normals (the
   area-weighted four-fold mean angle of the normals projected on the plane: a chair's seat and
   back, a car's roof and doors, an airplane's wings are at right angles to them). Up is the shorter
   of the two for a vehicle, the longer for a chair (a chair is taller than it is deep).
3. *Signs*. An airplane's tail fin (surface near the mirror plane whose normals point sideways,
   at least 0.5% of the samples) stands up at the rear; an airplane with no such fin falls back to
   the car's rule (a high-wing airplane may then come out upside down). A chair's highest tenth (the top of its back) spans less depth than its
   lowest (the feet, front and rear); a car's spans less width (the roof against the wheels). Then
   the highest tenth lies at the rear (a chair's back, a car's cabin).

A floor lamp (``kind`` "lamp") is taller than it is wide and often round: up is its longest
principal axis, towards the heavier half (the shade over a thin pole); its front is only the
longer of the other two axes, with an arbitrary sign.

These are heuristics: look at the result (a contact sheet: ``sdf_autodec.shapes.pictures.mesh_sheet``)
and report how often they were right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from sdf_autodec.geometry.pointcloud import nearest

KINDS: tuple[str, ...] = ("airplane", "car", "chair", "lamp")
"""What ``pose`` knows how to turn."""

SHAPENET_V2_TO_POSE = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
"""(3, 3) rows: ShapeNetCore.v2's frame (y up, front -z) into the pose frame (front +x): x' = -z, z' = x."""
PROCEDURAL_TO_POSE = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
"""(3, 3) rows: ``data_prep.procedural``'s frame (y up, a chair's front +z) into the pose frame: x' = z, z' = -x."""


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the rotation between rotations ``a`` and ``b`` (3, 3), in degrees."""
    return float(np.degrees(np.arccos(np.clip((np.trace(a @ b.T) - 1.0) / 2.0, -1.0, 1.0))))


def _turned(mesh: trimesh.Trimesh, centre: np.ndarray, rotation: np.ndarray) -> trimesh.Trimesh:
    """``mesh`` rotated by ``rotation`` (3, 3; rows the new axes) about ``centre``, which moves to the origin."""
    return trimesh.Trimesh((mesh.vertices - centre) @ rotation.T, mesh.faces, process=False)


@dataclass(frozen=True)
class Pose:
    """A mesh turned into the canonical frame, with the evidence for the turn."""

    mesh: trimesh.Trimesh
    """The rotated mesh (vertices rotated about the surface centroid, which moves to the origin)."""
    rotation: np.ndarray
    """(3, 3): rows are the new x (front), y (up), z (lateral) axes in the input's coordinates."""
    symmetry_error: float
    """Median distance of the surface mirrored across the chosen plane to the surface, as a fraction
    of the bounding diagonal: near 0 for a mirror-symmetric shape (a few 1e-3 for CAD), large when
    the plane, and so probably the pose, is doubtful."""


def surface_samples(mesh: trimesh.Trimesh, count: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points spread uniformly over the surface area, (count, 3), with the unit normals of
    their faces, (count, 3); the same for the same seed."""
    if len(mesh.faces) == 0 or mesh.area <= 0:
        raise ValueError("mesh has no surface to sample")
    points, faces = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points, dtype=np.float64), np.asarray(mesh.face_normals[faces], dtype=np.float64)


def principal_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centroid (3,), the principal axes (3, 3; rows, largest variance first) and the extent of
    ``points: (N, 3)`` along each axis (3,)."""
    centre = points.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov((points - centre).T))
    axes = vectors[:, ::-1].T.copy()
    projected = (points - centre) @ axes.T
    return centre, axes, np.ptp(projected, axis=0)


def mirror_error(points: np.ndarray, normal: np.ndarray, centre: np.ndarray) -> float:
    """Median distance of ``points: (N, 3)`` mirrored across the plane through ``centre`` with unit
    ``normal`` to the nearest original point (0 for an exact mirror symmetry, given dense samples)."""
    mirrored = points - 2.0 * ((points - centre) @ normal)[:, None] * normal
    distance, _ = nearest(mirrored, points)
    return float(np.median(distance))


def plane_axes(normals: np.ndarray, lateral: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two orthonormal axes of the plane perpendicular to unit ``lateral``, turned to the dominant
    directions of ``normals: (N, 3)`` (area-uniform samples) within it: the four-fold circular mean
    of their projected angles, each normal weighted by the square of its in-plane length."""
    first = np.eye(3)[int(np.argmin(np.abs(lateral)))]
    first = first - (first @ lateral) * lateral
    first /= np.linalg.norm(first)
    second = np.cross(lateral, first)
    u, v = normals @ first, normals @ second
    phi = np.angle(np.sum((u * u + v * v) * np.exp(4j * np.arctan2(v, u)))) / 4.0
    a = np.cos(phi) * first + np.sin(phi) * second
    return a, np.cross(lateral, a)


def pose(mesh: trimesh.Trimesh, kind: str, count: int = 20_000, seed: int = 0) -> Pose:
    """``mesh`` turned into the chair/vehicle frame (y up, front +x, mirror plane z = 0) by the rules
    of the module docstring."""
    if kind not in KINDS:
        raise ValueError(f"pose: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    points, normals = surface_samples(mesh, count, seed)
    centre, axes, extents = principal_axes(points)
    diagonal = float(np.linalg.norm(np.ptp(points, axis=0)))
    errors = [mirror_error(points, axis, centre) / diagonal for axis in axes]
    if kind == "lamp":
        return _pose_lamp(mesh, points, centre, axes, extents, errors)
    candidates = [i for i in range(3) if kind == "chair" or i != int(np.argmin(extents))]
    lateral_i = min(candidates, key=lambda i: errors[i])
    lateral = axes[lateral_i]
    a, b = plane_axes(normals, lateral)
    spans = [np.ptp(points @ a), np.ptp(points @ b)]
    up, front = (a, b) if (spans[0] < spans[1]) == (kind != "chair") else (b, a)
    height, depth = (points - centre) @ up, (points - centre) @ front
    if np.ptp(height) <= 1e-6 * diagonal:
        raise ValueError("pose: the mesh is flat along its up axis (no height to tell up from down)")
    fin = (np.abs(normals @ lateral) > 0.8) & (np.abs((points - centre) @ lateral) < 0.02 * diagonal)
    if kind == "airplane" and fin.sum() >= 0.005 * count:
        if height[fin].mean() < 0:
            up, height = -up, -height
        if depth[fin].mean() > 0:
            front = -front
    else:
        top, bottom = height > height.max() - 0.1 * np.ptp(height), height < height.min() + 0.1 * np.ptp(height)
        if kind == "chair":
            flip = np.ptp(depth[top]) > np.ptp(depth[bottom])
        else:
            side = (points - centre) @ lateral
            flip = np.ptp(side[top]) > np.ptp(side[bottom])
        if flip:
            up, height, top = -up, -height, bottom
        if depth[top].mean() > depth.mean():
            front = -front
    rotation = np.stack([front, up, np.cross(front, up)])
    return Pose(_turned(mesh, centre, rotation), rotation, float(errors[lateral_i]))


def _pose_lamp(mesh: trimesh.Trimesh, points: np.ndarray, centre: np.ndarray, axes: np.ndarray, extents: np.ndarray, errors: list[float]) -> Pose:
    """A floor lamp: up along the longest principal axis, towards the heavier half (the shade over a
    thin pole); front along the longer of the other two, its sign arbitrary (the eigenvector's)."""
    up_i = int(np.argmax(extents))
    front_i = max((i for i in range(3) if i != up_i), key=lambda i: extents[i])
    up, front = axes[up_i], axes[front_i]
    height = (points - centre) @ up
    if height.mean() < 0.5 * (height.min() + height.max()):
        up = -up
    rotation = np.stack([front, up, np.cross(front, up)])
    return Pose(_turned(mesh, centre, rotation), rotation, float(errors[3 - up_i - front_i]))


def upright_table(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """``mesh`` rotated so that y is up and the longest horizontal side runs along z (a heuristic for
    tables: the top and its underside hold most of the face area, and their normals point along up).

    Up is the dominant direction of the area-weighted face normals (the top eigenvector of
    ``sum(area * n n^T)``), snapped to the nearest coordinate axis when within 2 degrees of it (PSB's
    tables are axis-aligned: they stay exactly as they were); its sign puts the area-weighted centre
    above the middle of the height (the top is heavier than the feet). The long side is the first
    principal axis of the face centres projected on the horizontal plane."""
    area, normals, centres = mesh.area_faces, mesh.face_normals, mesh.triangles_center
    _, vectors = np.linalg.eigh((normals * area[:, None]).T @ normals)
    up = vectors[:, -1]
    axis = int(np.argmax(np.abs(up)))
    aligned = abs(up[axis]) > np.cos(np.radians(2.0))
    if aligned:
        up = np.eye(3)[axis]
    lo, hi = (mesh.vertices @ up).min(), (mesh.vertices @ up).max()
    if (area * (centres @ up)).sum() / area.sum() < 0.5 * (lo + hi):
        up = -up
    if aligned:  # the longest bounding-box side among the other two axes
        extent = mesh.bounds[1] - mesh.bounds[0]
        long = np.eye(3)[max((k for k in range(3) if k != axis), key=lambda k: extent[k])]
    else:
        flat = centres - np.outer(centres @ up, up)
        flat -= (area[:, None] * flat).sum(axis=0) / area.sum()
        _, spread = np.linalg.eigh((flat * area[:, None]).T @ flat)
        long = spread[:, -1] - (spread[:, -1] @ up) * up
        long /= np.linalg.norm(long)
    rotation = np.stack([np.cross(up, long), up, long])  # rows: the new x, y, z (right-handed)
    return trimesh.Trimesh(mesh.vertices @ rotation.T, mesh.faces, process=False)
