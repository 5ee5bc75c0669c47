"""Removing the surface a shape's own SDF samples rule out.

An SDF sample ``(y, s)`` says that no surface comes closer to ``y`` than ``|s|``: the open ball of
radius ``|s|`` around ``y`` is empty. A mesh vertex ``x`` with ``|s| - ‖x - y‖ > margin`` for some
sample therefore lies more than ``margin`` from the true surface, whatever the shape is — the
samples prove it wrong. A fitted code can leave such surface where the samples are sparse (far from
the shape, DeepSDF draws 1 sample in 20): floaters in a corner of the cube, a chair back where the
chair has none.

:func:`ruled_out` marks such vertices (each vertex is checked against its ``k`` nearest samples, so
a mark is always a proof, and a vertex a farther sample would rule out may go unmarked);
:func:`clean_mesh` removes them:

- ``components``: every connected component most of whose vertices are ruled out (whole floaters;
  what is left is as closed as it was);
- ``faces``: every face whose three vertices are ruled out (also the wrong parts of a component that
  is partly right; leaves holes where the wrong surface was);
- ``none``: nothing.

The margin should be large against the samples' own error (the clamp δ = 0.1 of DeepSDF's loss is
this toolkit's default): a vertex is removed only when it is provably that far off. Note that a
Chamfer distance rewards removing surface, so a figure for ``faces`` is not comparable with one for
an uncleaned mesh without the share of area removed next to it (``clean_mesh`` returns it).
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import cKDTree

CLEAN_MODES = ("none", "components", "faces")
NEIGHBOURS = 32
"""Samples each vertex is checked against (its nearest)."""


def ruled_out(vertices: np.ndarray, samples: np.ndarray, margin: float, k: int = NEIGHBOURS, tree: cKDTree | None = None) -> np.ndarray:
    """``(V,)`` bool: vertices ``(V, 3)`` that some sample of ``samples: (S, 4)`` (xyz, sdf; same frame)
    places more than ``margin`` from the surface, i.e. inside its empty ball by more than ``margin``."""
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    if len(vertices) == 0 or len(samples) == 0:
        return np.zeros(len(vertices), dtype=bool)
    tree = tree if tree is not None else cKDTree(samples[:, :3])
    k = min(k, len(samples))
    dist, idx = tree.query(vertices, k=k, workers=-1)
    dist, idx = dist.reshape(len(vertices), k), idx.reshape(len(vertices), k)
    slack = np.abs(samples[idx, 3]) - dist  # (V, k): > 0 inside an empty ball
    return slack.max(axis=1) > margin


def clean_mesh(mesh: trimesh.Trimesh, samples: np.ndarray, margin: float, mode: str = "components") -> tuple[trimesh.Trimesh, dict]:
    """``mesh`` without the surface ``samples: (S, 4)`` rule out (see the module docstring), and
    ``{"area_removed": share of the area, "faces_removed": count, "components_removed": count}``.
    The input mesh is not modified; a mesh that would lose everything is returned whole."""
    if mode not in CLEAN_MODES:
        raise ValueError(f"clean={mode!r}: choose one of {', '.join(CLEAN_MODES)}")
    stats = {"area_removed": 0.0, "faces_removed": 0, "components_removed": 0}
    if mode == "none" or len(mesh.faces) == 0:
        return mesh, stats
    bad = ruled_out(mesh.vertices, samples, margin)
    if mode == "faces":
        drop = bad[mesh.faces].all(axis=1)
    else:
        labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
        face_bad = bad[mesh.faces].mean(axis=1)  # per face, share of its vertices ruled out
        share = np.bincount(labels, weights=face_bad) / np.bincount(labels)
        drop = share[labels] > 0.5
        stats["components_removed"] = int((share > 0.5).sum())
    if not drop.any() or drop.all():
        return mesh, {**stats, "components_removed": 0}
    area = mesh.area_faces
    kept = mesh.submesh([np.flatnonzero(~drop)], append=True, repair=False)
    stats.update(area_removed=float(area[drop].sum() / area.sum()), faces_removed=int(drop.sum()))
    return kept, stats
