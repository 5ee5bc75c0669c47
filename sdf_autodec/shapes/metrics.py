"""Metrics between a predicted mesh and a ground-truth surface (samples, normals, optionally a mesh).

Conventions (``docs/metrics.md`` has the full protocol; all lengths are in the frame of the inputs,
which ``sdf-autodec eval`` makes DeepSDF's normalised unit-sphere frame by default):

- **Chamfer (DeepSDF)**: ``mean_p d(p, GT)² + mean_g d(g, pred)²`` over ``num_points`` samples each
  side (30000); papers report it ×1000 (``chamfer_x1000``).
- **Chamfer-L1**: ``(mean_p d(p, GT) + mean_g d(g, pred)) / 2`` (unsquared).
- **F-score@τ**: harmonic mean of precision (pred points within τ of GT) and recall (GT points
  within τ of pred), with τ = 1% and 2% of the ground truth's bounding-box diagonal.
- **Normal consistency**: mean ``|n_p · n_g|`` of nearest-neighbour pairs, averaged over both
  directions (needs normals on both sides).
- **Mesh accuracy** (DeepSDF, after Stutz & Geiger): the 90th percentile of the distances from the
  predicted surface samples to the ground-truth surface: its mesh when given, else the discs of its
  oriented samples (``geometry.surface.surfel_distance``; about 0 on the surface, where the
  distance to the nearest of 30000 samples would read about half a spacing), else its nearest sample.
- **Mesh completion** (DeepSDF): the fraction of ground-truth samples within ``completion_threshold``
  (0.01 in the unit-sphere frame) of the predicted MESH (exact point-to-triangle distance).
- **Volumetric IoU**: ``iou_points`` uniform points (seeded) in the union of both bounding boxes,
  padded by ``iou_padding`` of its diagonal on every side; inside the prediction = its generalised
  winding number, inside the ground truth = the winding number of its mesh or of its oriented cloud
  (``sdf_autodec.geometry.surface``: robust to holes, open sheets and thin parts).
- **Observed / unobserved** (completion from a partial scan): a ground-truth sample is *observed*
  when a scan point lies within ``observed_radius`` (0.02 in the unit-sphere frame) of it. Per part:
  completion, one-sided Chamfer GT→pred (squared and L1, the GT half of the Chamfer above) and
  F-score recall at 1% / 2%.
"""

from __future__ import annotations

import numpy as np
import trimesh

from sdf_autodec.geometry.pointcloud import nearest
from sdf_autodec.geometry.surface import inside_mesh, inside_points, mesh_distance, surfel_distance

FSCORE_FRACTIONS = (0.01, 0.02)
"""F-score thresholds as fractions of the ground truth's bounding-box diagonal."""
COMPLETION_THRESHOLD = 0.01
"""DeepSDF's mesh-completion distance, unit-sphere frame."""
ACCURACY_PERCENTILE = 90.0
"""DeepSDF's mesh accuracy: this percentile of the pred → GT distances."""
OBSERVED_RADIUS = 0.02
"""A ground-truth sample closer than this to a scan point is observed (unit-sphere frame)."""
IOU_POINTS = 100_000
"""Uniform points of the IoU estimate (Occupancy Networks use 100k)."""
IOU_PADDING = 0.05
"""Padding of the IoU box on every side, as a fraction of its diagonal."""
PARTS = ("observed", "unobserved")


def sample_mesh(mesh: trimesh.Trimesh, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` area-weighted surface points of ``mesh`` and their face normals, ``(count, 3)`` each."""
    points, face_index = trimesh.sample.sample_surface(mesh, count, seed=np.random.default_rng(seed))
    return np.asarray(points), np.asarray(mesh.face_normals[face_index])


def fscore(d_pred_to_gt: np.ndarray, d_gt_to_pred: np.ndarray, threshold: float) -> float:
    precision = float((d_pred_to_gt < threshold).mean())
    recall = float((d_gt_to_pred < threshold).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def bbox_diagonal(points: np.ndarray) -> float:
    """Length of the diagonal of the axis-aligned bounding box of ``points: (N, 3)``."""
    return float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))


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
        scale = bbox_diagonal(gt)
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


def mesh_accuracy(d_pred_to_gt: np.ndarray, percentile: float = ACCURACY_PERCENTILE) -> float:
    """DeepSDF's mesh accuracy: the distance within which ``percentile`` % of the predicted samples
    lie from the ground truth. ``d_pred_to_gt: (N,)`` → scalar."""
    return float(np.percentile(d_pred_to_gt, percentile))


def mesh_completion(d_gt_to_pred: np.ndarray, threshold: float = COMPLETION_THRESHOLD) -> float:
    """DeepSDF's mesh completion: the fraction of ground-truth samples within ``threshold`` of the
    prediction. ``d_gt_to_pred: (M,)`` → scalar in [0, 1]."""
    return float(np.mean(d_gt_to_pred <= threshold))


def iou_box(*point_sets: np.ndarray, padding: float = IOU_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)``, each ``(3,)``: the bounding box of all ``point_sets`` (each ``(N_i, 3)``), padded
    on every side by ``padding`` times its diagonal (so that a flat shape still gets a volume)."""
    points = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in point_sets])
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = padding * float(np.linalg.norm(hi - lo))
    return lo - pad, hi + pad


def uniform_points(lo: np.ndarray, hi: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """``count`` points uniform in the box ``[lo, hi]``, ``(count, 3)``; the same for the same seed."""
    return np.random.default_rng(seed).uniform(lo, hi, size=(count, 3))


def volumetric_iou(inside_a: np.ndarray, inside_b: np.ndarray) -> float:
    """``|A ∩ B| / |A ∪ B|`` from inside flags of the same query points, ``(Q,)`` bool each; NaN when
    no query is inside either. Uniform queries make it an unbiased estimate of the volumes' IoU."""
    union = np.count_nonzero(inside_a | inside_b)
    return float("nan") if union == 0 else float(np.count_nonzero(inside_a & inside_b) / union)


def mesh_iou(
    mesh: trimesh.Trimesh,
    gt_points: np.ndarray,
    gt_normals: np.ndarray | None = None,
    gt_mesh: trimesh.Trimesh | None = None,
    count: int = IOU_POINTS,
    seed: int = 0,
    padding: float = IOU_PADDING,
) -> float:
    """Volumetric IoU of ``mesh`` and the ground truth, estimated on ``count`` uniform points in the
    padded union of their bounding boxes. The ground truth's inside test uses ``gt_mesh`` when given,
    else the cloud ``gt_points: (M, 3)`` with OUTWARD ``gt_normals: (M, 3)``."""
    if gt_mesh is None and gt_normals is None:
        raise ValueError("the IoU needs a ground-truth mesh or outward ground-truth normals")
    lo, hi = iou_box(mesh.vertices, gt_points if gt_mesh is None else gt_mesh.vertices, padding=padding)
    queries = uniform_points(lo, hi, count, seed)
    pred_inside = inside_mesh(mesh.vertices, mesh.faces, queries)
    gt_inside = inside_mesh(gt_mesh.vertices, gt_mesh.faces, queries) if gt_mesh is not None else inside_points(gt_points, gt_normals, queries)
    return volumetric_iou(pred_inside, gt_inside)


def observed_mask(gt_points: np.ndarray, scan_points: np.ndarray, radius: float = OBSERVED_RADIUS) -> np.ndarray:
    """``(M,)`` bool: which ``gt_points: (M, 3)`` have a ``scan_points: (S, 3)`` point within ``radius``."""
    if len(scan_points) == 0:
        return np.zeros(len(gt_points), dtype=bool)
    d, _ = nearest(gt_points, scan_points)
    return d <= radius


def part_metrics(
    d_gt_to_pred_points: np.ndarray,
    d_gt_to_pred_mesh: np.ndarray,
    observed: np.ndarray,
    completion_threshold: float,
    scale: float,
) -> dict[str, float]:
    """Ground-truth-side metrics on the observed and the unobserved samples separately.

    ``d_gt_to_pred_points: (M,)``: distance of each GT sample to the nearest predicted sample (as in
    the Chamfer and F-score); ``d_gt_to_pred_mesh: (M,)``: to the predicted mesh (as in completion);
    ``observed: (M,)`` bool; ``scale``: F-score reference length. Keys ``observed_fraction`` and
    ``<part>.{completion, chamfer_gt_to_pred, chamfer_l1_gt_to_pred, recall@1%, recall@2%}``; a part
    with no sample has no keys."""
    out = {"observed_fraction": float(np.mean(observed))}
    for part, mask in zip(PARTS, (observed, ~observed)):
        if not np.any(mask):
            continue
        d, dm = d_gt_to_pred_points[mask], d_gt_to_pred_mesh[mask]
        out[f"{part}.completion"] = mesh_completion(dm, completion_threshold)
        out[f"{part}.chamfer_gt_to_pred"] = float(np.mean(d**2))
        out[f"{part}.chamfer_l1_gt_to_pred"] = float(np.mean(d))
        for frac in FSCORE_FRACTIONS:
            out[f"{part}.recall@{frac:.0%}"] = float(np.mean(d < frac * scale))
    return out


def mesh_metrics(
    mesh: trimesh.Trimesh,
    gt_points: np.ndarray,
    gt_normals: np.ndarray | None = None,
    num_points: int = 30_000,
    seed: int = 0,
    *,
    gt_mesh: trimesh.Trimesh | None = None,
    scan_points: np.ndarray | None = None,
    completion_threshold: float = COMPLETION_THRESHOLD,
    observed_radius: float = OBSERVED_RADIUS,
    accuracy_percentile: float = ACCURACY_PERCENTILE,
    iou_points: int = 0,
    iou_padding: float = IOU_PADDING,
) -> dict[str, float]:
    """Every metric of ``mesh`` against the ground truth, all inputs in one frame (lengths and
    thresholds in its units).

    ``gt_points: (M, 3)`` surface samples (``num_points`` of them, seeded, for the Chamfer, F-score,
    completion and split; all of them as the reference of the accuracy); ``gt_normals: (M, 3)``
    (normal consistency, the accuracy's sample discs, and the IoU's inside test, where they must
    point outwards); ``gt_mesh``: when
    given, the reference of the accuracy and of the IoU's inside test; ``scan_points: (S, 3)``: the
    partial scan, for the observed / unobserved split; ``iou_points``: 0 = no IoU.
    """
    gt_points = np.asarray(gt_points, dtype=np.float64)
    pred, pred_normals = sample_mesh(mesh, num_points, seed)
    all_gt = gt_points
    rng = np.random.default_rng(seed)
    if len(gt_points) > num_points:
        pick = rng.choice(len(gt_points), num_points, replace=False)
        gt_points = gt_points[pick]
        gt_normals_sub = None if gt_normals is None else np.asarray(gt_normals)[pick]
    else:
        gt_normals_sub = gt_normals
    scale = bbox_diagonal(gt_points)
    out = point_metrics(pred, gt_points, pred_normals, gt_normals_sub, scale=scale)
    if gt_mesh is not None:
        d_pred_to_gt = mesh_distance(gt_mesh.vertices, gt_mesh.faces, pred)
    elif gt_normals is not None:
        d_pred_to_gt = surfel_distance(all_gt, gt_normals, pred)
    else:
        d_pred_to_gt = nearest(pred, all_gt)[0]
    d_gt_to_mesh = mesh_distance(mesh.vertices, mesh.faces, gt_points)
    out["mesh_accuracy"] = mesh_accuracy(d_pred_to_gt, accuracy_percentile)
    out["mesh_completion"] = mesh_completion(d_gt_to_mesh, completion_threshold)
    if iou_points > 0 and (gt_mesh is not None or gt_normals is not None):
        iou = mesh_iou(mesh, all_gt, gt_normals, gt_mesh, iou_points, seed, iou_padding)
        if np.isfinite(iou):
            out["iou"] = iou
    if scan_points is not None:
        observed = observed_mask(gt_points, np.asarray(scan_points, dtype=np.float64), observed_radius)
        out.update(part_metrics(nearest(gt_points, pred)[0], d_gt_to_mesh, observed, completion_threshold, scale))
    return out
