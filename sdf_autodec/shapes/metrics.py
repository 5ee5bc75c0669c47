"""Surface metrics between a predicted mesh and ground-truth surface samples.

Conventions (all in the normalised frame, where the shape fits in the unit sphere):

- **Chamfer (DeepSDF)**: ``mean_p d(p, GT)² + mean_g d(g, pred)²`` over ``num_points`` samples each
  side (30000); papers report it ×1000 (``chamfer_x1000``).
- **Chamfer-L1**: ``(mean_p d(p, GT) + mean_g d(g, pred)) / 2`` (unsquared).
- **F-score@τ**: harmonic mean of precision (pred points within τ of GT) and recall (GT points
  within τ of pred), with τ = 1% and 2% of the ground truth's bounding-box diagonal.
- **Normal consistency**: mean ``|n_p · n_g|`` of nearest-neighbour pairs, averaged over both
  directions (needs normals on both sides).
"""

from __future__ import annotations

import numpy as np
import trimesh

from sdf_autodec.geometry.pointcloud import nearest

FSCORE_FRACTIONS = (0.01, 0.02)


def sample_mesh(mesh: trimesh.Trimesh, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` area-weighted surface points of ``mesh`` and their face normals, ``(count, 3)`` each."""
    points, face_index = trimesh.sample.sample_surface(mesh, count, seed=np.random.default_rng(seed))
    return np.asarray(points), np.asarray(mesh.face_normals[face_index])


def fscore(d_pred_to_gt: np.ndarray, d_gt_to_pred: np.ndarray, threshold: float) -> float:
    precision = float((d_pred_to_gt < threshold).mean())
    recall = float((d_gt_to_pred < threshold).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def point_metrics(
    pred: np.ndarray,
    gt: np.ndarray,
    pred_normals: np.ndarray | None = None,
    gt_normals: np.ndarray | None = None,
    scale: float | None = None,
) -> dict[str, float]:
    """Metrics between point sets ``pred: (N, 3)`` and ``gt: (M, 3)``; ``scale`` = F-score reference
    length (default: ``gt``'s bounding-box diagonal)."""
    d_pg, i_pg = nearest(pred, gt)
    d_gp, i_gp = nearest(gt, pred)
    if scale is None:
        scale = float(np.linalg.norm(gt.max(axis=0) - gt.min(axis=0)))
    chamfer = float(np.mean(d_pg**2) + np.mean(d_gp**2))
    out = {
        "chamfer": chamfer,
        "chamfer_x1000": 1000.0 * chamfer,
        "chamfer_l1": float(0.5 * (d_pg.mean() + d_gp.mean())),
    }
    for frac in FSCORE_FRACTIONS:
        out[f"fscore@{frac:.0%}"] = fscore(d_pg, d_gp, frac * scale)
    if pred_normals is not None and gt_normals is not None:
        a = np.abs(np.sum(pred_normals * gt_normals[i_pg], axis=1)).mean()
        b = np.abs(np.sum(gt_normals * pred_normals[i_gp], axis=1)).mean()
        out["normal_consistency"] = float(0.5 * (a + b))
    return out


def mesh_metrics(mesh: trimesh.Trimesh, gt_points: np.ndarray, gt_normals: np.ndarray | None = None, num_points: int = 30_000, seed: int = 0) -> dict[str, float]:
    """Metrics of ``mesh`` against ``num_points`` of the ground-truth samples (both in one frame)."""
    pred, pred_normals = sample_mesh(mesh, num_points, seed)
    rng = np.random.default_rng(seed)
    if len(gt_points) > num_points:
        pick = rng.choice(len(gt_points), num_points, replace=False)
        gt_points = gt_points[pick]
        gt_normals = None if gt_normals is None else gt_normals[pick]
    return point_metrics(pred, gt_points, pred_normals, gt_normals)
