"""Controlled damage to watertight meshes, to measure sign robustness against known truth.

Each function returns a new mesh and leaves its input alone. ``damage_all`` applies every kind:
holes, duplicated faces, flipped faces, an interior part and double-sided faces — what
ShapeNet-style meshes look like.
"""

from __future__ import annotations

import numpy as np
import trimesh


def punch_holes(mesh: trimesh.Trimesh, rng: np.random.Generator, holes: int = 3, radius: float = 0.04) -> trimesh.Trimesh:
    """Remove the faces whose centroid lies within ``radius`` of ``holes`` random surface points."""
    centres, _ = trimesh.sample.sample_surface(mesh, holes, seed=rng)
    d = np.linalg.norm(mesh.triangles_center[:, None, :] - centres[None], axis=2).min(axis=1)
    keep = d > radius
    if keep.all():  # coarse mesh: remove at least the nearest face to each centre
        keep[np.argmin(np.linalg.norm(mesh.triangles_center[:, None, :] - centres[None], axis=2), axis=0)] = False
    return trimesh.Trimesh(mesh.vertices, mesh.faces[keep], process=False)


def duplicate_faces(mesh: trimesh.Trimesh, rng: np.random.Generator, fraction: float = 0.1) -> trimesh.Trimesh:
    """Append copies of a random ``fraction`` of the faces, with their own (coincident) vertices."""
    pick = rng.choice(len(mesh.faces), max(1, int(fraction * len(mesh.faces))), replace=False)
    tri = mesh.vertices[mesh.faces[pick]].reshape(-1, 3)
    faces = np.arange(len(tri)).reshape(-1, 3) + len(mesh.vertices)
    return trimesh.Trimesh(np.vstack([mesh.vertices, tri]), np.vstack([mesh.faces, faces]), process=False)


def flip_faces(mesh: trimesh.Trimesh, rng: np.random.Generator, fraction: float = 0.2) -> trimesh.Trimesh:
    """Reverse the winding of a random ``fraction`` of the faces."""
    faces = mesh.faces.copy()
    pick = rng.random(len(faces)) < fraction
    faces[pick] = faces[pick][:, ::-1]
    return trimesh.Trimesh(mesh.vertices, faces, process=False)


def double_sided(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Every face twice, once reversed (a common export of thin sheets)."""
    return trimesh.Trimesh(mesh.vertices, np.vstack([mesh.faces, mesh.faces[:, ::-1]]), process=False)


def add_interior_part(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """Add a closed sphere strictly inside the shape, at its deepest sampled interior point."""
    from data_prep.raycast import raycasting_scene, signed_distance

    lo, hi = mesh.bounds
    candidates = rng.uniform(lo, hi, (20000, 3))
    sdf = signed_distance(raycasting_scene(mesh), candidates, sign_rays=5)
    best = int(np.argmin(sdf))
    if sdf[best] >= 0:
        return mesh.copy()
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.5 * -sdf[best]).apply_translation(candidates[best])
    return trimesh.util.concatenate([mesh, sphere])


def damage_all(mesh: trimesh.Trimesh, rng: np.random.Generator) -> trimesh.Trimesh:
    """Holes, duplicated faces, flipped faces, an interior part, then every face double-sided."""
    damaged = add_interior_part(mesh, rng)
    damaged = punch_holes(damaged, rng)
    damaged = duplicate_faces(damaged, rng)
    damaged = flip_faces(damaged, rng)
    return double_sided(damaged)
