"""The trivial answers every reconstruction or completion is reported beside.

- **mean shape**: the zero code (the centre of the prior), meshed once;
- **retrieval**: the training code that best explains what was observed (lowest data loss on the
  same observations the fit sees: SDF samples, or a scan's surface points, ±η offsets and free
  space), meshed: what a lookup of the training set gives without any fitting;
- **oracle**: the training shape whose ground-truth surface is nearest (Chamfer, each shape in its
  own unit-sphere frame) to the test shape's, scored sample against sample: the best any choice
  of a training shape can do;
- **scan** (completion only): the partial scan itself as the prediction, to tell whether completing
  it kept what was observed.

``reconstruct`` and ``complete`` write the meshes of the first two under ``OUT/references/``
(:func:`write_reference_meshes`); ``reconstruct`` and ``eval`` score all of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import trimesh

from sdf_autodec.geometry.frames import parse_instance_id, rotation_set
from sdf_autodec.storage.layout import DatasetError
from sdf_autodec.geometry.normalize import Normalization
from sdf_autodec.shapes import metrics
from sdf_autodec.shapes.ground_truth import GroundTruth, GroundTruthSource
from sdf_autodec.shapes.mesh import EmptyLevelSet, MeshConfig, extract_meshes, write_mesh
from sdf_autodec.shapes.train import TrainedModel

REFERENCES = "references"
"""Folder of the reference meshes inside an output folder: ``mean_shape.ply``, ``retrieval/<name>.ply``."""
MEAN_SHAPE = "mean_shape.ply"
RETRIEVAL = "retrieval"


def write_reference_meshes(
    model: TrainedModel, retrieved: dict[str, int], cfg: MeshConfig, out: Path, normalization: Normalization | None = None
) -> tuple[trimesh.Trimesh | EmptyLevelSet, dict[str, trimesh.Trimesh | EmptyLevelSet]]:
    """Mesh the zero code and every retrieved training code (``retrieved``: name → row of the latent
    table; each distinct row meshed once) and write them under ``out/references/`` (normalised frame,
    or ``normalization``'s source frame). Returns the mean-shape mesh and the retrieval mesh of each
    name, each an :class:`EmptyLevelSet` where its code has no surface."""
    folder = Path(out) / REFERENCES
    mean = extract_meshes(model.decoder, torch.zeros(1, model.latent_size, device=model.latents.device), cfg)[0]
    if not isinstance(mean, EmptyLevelSet):
        write_mesh(mean, folder / MEAN_SHAPE, normalization)
    rows = sorted(set(retrieved.values()))
    found = dict(zip(rows, extract_meshes(model.decoder, model.latents[rows], cfg))) if rows else {}
    meshes = {}
    for name, row in retrieved.items():
        meshes[name] = found[row]
        if not isinstance(found[row], EmptyLevelSet):
            write_mesh(found[row], folder / RETRIEVAL / f"{name}.ply", normalization)
    return mean, meshes


class TrainingSurfaces:
    """A run's training instances' ground-truth surface samples (a rotated pose turned with its
    rotation), each in its own unit-sphere frame, for the oracle row."""

    SEARCH_POINTS = 3000
    """Points a side when searching for the nearest instance; the one found is scored with all of them."""

    def __init__(self, model: TrainedModel):
        self.error = ""
        self.surfaces: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        data = Path(str(model.config.get("data", "")))
        try:
            source = GroundTruthSource(data, "data")
        except DatasetError as e:
            self.error = f"training shapes' surfaces not available ({e})"
            return
        rotations = rotation_set(str(model.config.get("rotations", "none")))
        for name in model.ids:
            sid, r = parse_instance_id(name)
            if sid not in source.ids:
                continue
            gt = source.load(sid)
            turn = rotations[r]
            self.surfaces[name] = (gt.norm.apply(gt.points) @ turn.T, None if gt.normals is None else gt.normals @ turn.T)
        if not self.surfaces:
            self.error = f"{data}: none of the run's training shapes has surface samples"

    def nearest(self, gt: GroundTruth, num_points: int, seed: int) -> tuple[str, dict] | str:
        """The training instance nearest to ``gt`` by Chamfer (unit sphere) and its metrics in both
        frames (``normalized``, ``source``: ``gt``'s), or why there is none."""
        if self.error:
            return self.error
        rng = np.random.default_rng(seed)
        target = gt.norm.apply(gt.points)
        pick = rng.choice(len(target), min(num_points, len(target)), replace=False)
        target, target_normals = target[pick], None if gt.normals is None else gt.normals[pick]
        probe = target[: self.SEARCH_POINTS]  # a random subset already (pick is a random permutation's head)
        best, best_chamfer = None, float("inf")
        for name, (points, _) in self.surfaces.items():
            sub = points[rng.choice(len(points), min(self.SEARCH_POINTS, len(points)), replace=False)]
            c = metrics.point_metrics(sub, probe)["chamfer"]
            if c < best_chamfer:
                best, best_chamfer = name, c
        points, normals = self.surfaces[best]
        sub = rng.choice(len(points), min(num_points, len(points)), replace=False)
        pred, pred_normals = points[sub], None if normals is None else normals[sub]
        by_frame = {
            "normalized": metrics.point_metrics(pred, target, pred_normals, target_normals),
            "source": metrics.point_metrics(gt.norm.invert(pred), gt.norm.invert(target), pred_normals, target_normals),
        }
        return best, by_frame


def scan_metrics(scan_points: np.ndarray, gt_points: np.ndarray, num_points: int, seed: int) -> dict[str, float]:
    """The partial scan ``(S, 3)`` itself scored as a prediction against ``gt_points: (M, 3)`` (same
    frame; up to ``num_points`` of each, drawn with ``seed``): Chamfer, F-scores and the one-sided
    terms, no normals."""
    rng = np.random.default_rng(seed)
    pred = scan_points[rng.choice(len(scan_points), min(num_points, len(scan_points)), replace=False)]
    gt = gt_points[rng.choice(len(gt_points), min(num_points, len(gt_points)), replace=False)]
    return metrics.point_metrics(pred, gt)
