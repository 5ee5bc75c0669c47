"""Loading meshes with trimesh, validated: every failure is a :class:`MeshError` naming file and reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from sdf_autodec.errors import first_line



class MeshError(ValueError):
    """A mesh cannot be used; ``str(e)`` is one line: ``<path>: <reason>``."""


def load_mesh(path: str | Path) -> trimesh.Trimesh:
    """Load ``path`` as one triangle mesh (the parts of a multi-object scene are merged).

    Raises :class:`MeshError` for a missing or unreadable file, a mesh with no vertices or faces,
    NaN/inf vertices, or faces that index missing vertices.
    """
    path = Path(path)
    if not path.is_file():
        raise MeshError(f"{path}: file not found")
    if path.suffix.lower() == ".ply" and b"element tristrips" in _ply_header(path):
        raise MeshError(f"{path}: the PLY stores triangle strips (element tristrips), which trimesh cannot read; convert it to triangles first")
    try:
        fast = _read_triangle_off(path) if path.suffix.lower() == ".off" else None
        loaded = trimesh.Trimesh(*fast, process=False) if fast is not None else trimesh.load(path, force="mesh", process=False)
    except Exception as e:  # trimesh raises many types for bad files
        raise MeshError(f"{path}: unreadable mesh ({first_line(e)})") from None
    if isinstance(loaded, trimesh.Scene):  # force="mesh" gives an empty Scene when nothing was read
        loaded = loaded.to_geometry() if loaded.geometry else None
    if not isinstance(loaded, trimesh.Trimesh):
        raise MeshError(f"{path}: no triangle mesh in the file (got {type(loaded).__name__})")
    vertices, faces = np.asarray(loaded.vertices), np.asarray(loaded.faces)
    if len(vertices) == 0:
        raise MeshError(f"{path}: mesh has no vertices")
    if len(faces) == 0:
        raise MeshError(f"{path}: mesh has no faces")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices).all(axis=1)).sum())
        raise MeshError(f"{path}: {bad} vertices are NaN or inf")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError(f"{path}: faces index vertices that do not exist")
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    if mesh.area <= 0:
        raise MeshError(f"{path}: mesh has zero surface area")
    return mesh


def _ply_header(path: Path, limit: int = 65536) -> bytes:
    """The header of a PLY file (up to ``end_header``), for checks before parsing."""
    with open(path, "rb") as f:
        head = f.read(limit)
    end = head.find(b"end_header")
    return head if end < 0 else head[:end]


def _read_triangle_off(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Vertices ``(V, 3)`` and faces ``(F, 3)`` of an ASCII OFF made of triangles only, parsed with
    numpy (trimesh's reader loops in Python: 0.1-0.2 s for a 30k-face PSB mesh); ``None`` for
    anything else (comments, polygons, colours, binary), which trimesh then reads."""
    text = path.read_bytes()
    if b"#" in text or not text.lstrip().startswith(b"OFF"):
        return None
    tokens = text.split()
    first = tokens[0][3:]  # ModelNet writes "OFF<nv> <nf> <ne>" on one line
    counts = ([first] if first else []) + tokens[1 : 4 - bool(first)]
    try:
        nv, nf = int(counts[0]), int(counts[1])
    except (ValueError, IndexError):
        return None
    start = 4 - bool(first)
    end_v = start + 3 * nv
    if len(tokens) != end_v + 4 * nf:
        return None
    vertices = np.array(tokens[start:end_v], dtype=np.float64).reshape(nv, 3)
    faces = np.array(tokens[end_v:], dtype=np.int64).reshape(nf, 4)
    if not (faces[:, 0] == 3).all():
        return None
    return vertices, faces[:, 1:]
