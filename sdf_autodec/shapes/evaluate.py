"""``sdf-autodec eval``: predicted meshes vs ground truth → metrics JSON and CSV.

Ground truth comes in two forms (``gt_format``):

- ``data``: a prepared data directory — ``SurfaceSamples/<dataset>/<class>/<id>.ply`` (points and
  outward normals, source frame) with ``NormalizationParameters/<...>/<id>.npz`` (the model's frame);
- ``dvr``: a folder of ``<id>/pointcloud.npz`` (Occupancy Networks / DVR: ``points``, ``normals``,
  float16, in about [-0.5, 0.5]^3, their source frame). Their normals have arbitrary signs: they are
  deduplicated and oriented (``geometry.surface.orient_normals``) before the inside test of the IoU.

The evaluation frame ``normalized`` is DeepSDF's unit sphere: the stored normalisation of a data
directory prepped with ``normalization=deepsdf`` (the default, read from its manifest), otherwise
DeepSDF's normalisation computed from the ground-truth samples (bounding-box centre, farthest sample
at 1/1.03). Predictions and scans said to be ``normalized`` are in the MODEL's frame: the stored
normalisation of a data directory (whatever its convention); for ``dvr`` the same unit sphere.

A predicted mesh ``<stem>.ply`` is matched to the shape whose id is ``<stem>``, or ``<stem>`` without
a trailing ``_v<k>`` (a completed partial scan), or else the longest id that ``<stem>`` starts with,
followed by ``_``. Metrics are computed in ``frame`` (DeepSDF's unit sphere by default); absolute
thresholds are given in the unit-sphere frame and scaled with the shape when another frame is chosen,
so they cover the same part of the shape in both. ``docs/metrics.md`` has the protocol.

Writes ``output`` (JSON: config, protocol, mean, median, per-shape rows, unmatched and failed meshes)
and, next to it, the same stem with ``.csv``: one row per mesh, then a ``mean`` and a ``median`` row.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from sdf_autodec.atomic import atomic_write_bytes
from sdf_autodec.geometry.layout import SURFACE_DIR, DatasetError, DatasetLayout, ShapeKey, read_normalization, write_json
from sdf_autodec.geometry.normalize import Normalization, deepsdf_normalization
from sdf_autodec.geometry.surface import deduplicate, orient_normals
from sdf_autodec.optional import open3d
from sdf_autodec.shapes import metrics
from sdf_autodec.shapes.scans import SCAN_SUFFIXES, ScanError, read_scan

MESH_SUFFIXES = (".ply", ".obj", ".off", ".stl", ".glb")
VIEW_SUFFIX = re.compile(r"_v\d+$")
DVR_CLOUD = "pointcloud.npz"
FRAMES = ("normalized", "source")


@dataclass
class EvalConfig:
    """Evaluation of predicted meshes against ground truth."""

    pred: str = ""
    """Folder of predicted meshes (searched recursively)."""
    gt: str = ""
    """Ground truth: a data directory (SurfaceSamples/ + NormalizationParameters/) or a DVR folder (``<id>/pointcloud.npz``)."""
    output: str = ""
    """Metrics JSON to write; the CSV goes next to it with the same stem."""
    gt_format: str = "auto"
    """``data``, ``dvr`` or ``auto`` (``data`` when ``gt`` has SurfaceSamples/, ``dvr`` when it has ``*/pointcloud.npz``)."""
    frame: str = "normalized"
    """Frame the metrics are computed in: ``normalized`` (DeepSDF's unit sphere, per shape) or ``source`` (the ground truth's own frame; DVR's [-0.5, 0.5]^3)."""
    pred_frame: str = "auto"
    """Frame of the predicted meshes: ``normalized`` (the model's: the data directory's stored normalisation), ``source`` or ``auto`` (``normalized`` for ``data``, ``source`` for ``dvr``)."""
    scans: str = ""
    """Optional folder of the partial scans (``<mesh stem>.npz/.ply/.pcd``, searched recursively): splits the metrics into observed / unobserved ground truth."""
    scan_frame: str = "auto"
    """Frame of the scans: ``normalized`` (the model's), ``source`` or ``auto`` (``normalized`` for ``data``, as prep writes PartialScans/; ``source`` for ``dvr``, as ``sdf-autodec dvr`` writes them)."""
    num_points: int = 30_000
    """Surface points per side for Chamfer, F-score, completion (DeepSDF: 30000)."""
    seed: int = 0
    """Seed of the surface sampling, the ground-truth subset and the IoU points."""
    iou_points: int = metrics.IOU_POINTS
    """Uniform points of the volumetric IoU estimate (0: no IoU)."""
    iou_padding: float = metrics.IOU_PADDING
    """Padding of the IoU box on every side, as a fraction of its diagonal."""
    completion_threshold: float = metrics.COMPLETION_THRESHOLD
    """Mesh completion distance, in the unit-sphere frame (DeepSDF: 0.01)."""
    accuracy_percentile: float = metrics.ACCURACY_PERCENTILE
    """Percentile of the pred → GT distances reported as mesh accuracy (DeepSDF: 90)."""
    observed_radius: float = metrics.OBSERVED_RADIUS
    """A ground-truth point within this distance of a scan point is observed (unit-sphere frame)."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class GroundTruth:
    """One shape's ground truth in its source frame."""

    cls: str
    points: np.ndarray  # (M, 3)
    normals: np.ndarray | None  # (M, 3), outward
    norm: Normalization  # source → the unit-sphere evaluation frame
    model_norm: Normalization  # source → the model's frame (the data directory's stored normalisation)


def detect_format(gt: Path) -> str:
    if (gt / SURFACE_DIR).is_dir():
        return "data"
    if any(gt.glob(f"*/{DVR_CLOUD}")):
        return "dvr"
    raise DatasetError(f"{gt}: neither a prepared data directory (no {SURFACE_DIR}/) nor a DVR folder (no */{DVR_CLOUD})")


def ground_truth_keys(data_dir: Path) -> dict[str, ShapeKey]:
    keys = {}
    for p in sorted((data_dir / SURFACE_DIR).glob("*/*/*.ply")):
        keys[p.stem] = ShapeKey(p.parent.parent.name, p.parent.name, p.stem)
    if not keys:
        raise DatasetError(f"{data_dir / SURFACE_DIR}: no surface samples (is {data_dir} a prepared data directory?)")
    return keys


def read_surface(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    cloud = open3d().io.read_point_cloud(str(path))
    points = np.asarray(cloud.points)
    if len(points) == 0:
        raise DatasetError(f"{path}: no surface points")
    return points, (np.asarray(cloud.normals) if cloud.has_normals() else None)


def read_dvr_cloud(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``points, normals: (M, 3)`` float64 of a DVR ``pointcloud.npz``, deduplicated, normals oriented outwards."""
    try:
        with np.load(path) as data:
            points, normals = np.asarray(data["points"], np.float64), np.asarray(data["normals"], np.float64)
    except FileNotFoundError:
        raise DatasetError(f"{path}: ground-truth point cloud not found") from None
    except Exception as e:
        raise DatasetError(f"{path}: unreadable ground-truth point cloud ({type(e).__name__}: {e})") from None
    if points.ndim != 2 or points.shape[1] != 3 or normals.shape != points.shape:
        raise DatasetError(f"{path}: expected points and normals of shape (N, 3), got {points.shape} and {normals.shape}")
    points, normals = deduplicate(points, normals)
    if len(points) < 10:
        raise DatasetError(f"{path}: only {len(points)} usable ground-truth points")
    normals, _ = orient_normals(points, normals)
    return points, normals


class GroundTruthSource:
    """Ids and per-shape loading for either ground-truth form."""

    def __init__(self, root: Path, fmt: str):
        self.root, self.format = root, fmt
        if fmt == "data":
            self.keys = ground_truth_keys(root)
            self.layout = DatasetLayout(root)
            self.ids = set(self.keys)
            self.convention = prep_convention(self.layout)
        else:
            self.ids = {p.parent.name for p in root.glob(f"*/{DVR_CLOUD}")}
            if not self.ids:
                raise DatasetError(f"{root}: no */{DVR_CLOUD} ground-truth clouds")

    def match(self, stem: str) -> str | None:
        """The shape id a predicted mesh ``stem`` belongs to, or None."""
        if stem in self.ids:
            return stem
        if VIEW_SUFFIX.sub("", stem) in self.ids:
            return VIEW_SUFFIX.sub("", stem)
        prefixes = [i for i in self.ids if stem.startswith(i + "_")]
        return max(prefixes, key=len) if prefixes else None

    def load(self, shape_id: str) -> GroundTruth:
        if self.format == "data":
            key = self.keys[shape_id]
            points, normals = read_surface(self.layout.surface(key))
            stored = read_normalization(self.layout.normalization(key))
            return GroundTruth(key.cls, points, normals, stored if self.convention == "deepsdf" else deepsdf_normalization(points), stored)
        points, normals = read_dvr_cloud(self.root / shape_id / DVR_CLOUD)
        norm = deepsdf_normalization(points)
        return GroundTruth("", points, normals, norm, norm)


def prep_convention(layout: DatasetLayout) -> str:
    """The ``normalization`` a data directory was prepped with (``deepsdf`` when its manifest does not say)."""
    try:
        return str(json.loads(layout.manifest.read_text())["config"].get("normalization", "deepsdf"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "deepsdf"


def to_frame(points: np.ndarray, have: str, want: str, gt: GroundTruth) -> np.ndarray:
    """``points: (N, 3)`` from frame ``have`` (``normalized``: the model's, or ``source``) to the
    evaluation frame ``want`` (``normalized``: the unit sphere, or ``source``)."""
    points = gt.model_norm.invert(points) if have == "normalized" else np.asarray(points, dtype=np.float64)
    return gt.norm.apply(points) if want == "normalized" else points


def find_scan_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: scan folder not found")
    found: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in SCAN_SUFFIXES:
            found.setdefault(p.stem, p)
    return found


def aggregate(rows: dict[str, dict]) -> tuple[dict, dict]:
    """Mean and median over the rows that have each metric (finite values only)."""
    names = sorted({k for r in rows.values() for k, v in r.items() if isinstance(v, float)})
    mean, median = {}, {}
    for n in names:
        values = [r[n] for r in rows.values() if isinstance(r.get(n), float) and np.isfinite(r[n])]
        if values:
            mean[n], median[n] = float(np.mean(values)), float(statistics.median(values))
    return mean, median


def write_csv(path: Path, rows: dict[str, dict], mean: dict, median: dict) -> None:
    """One row per mesh (``mesh``, ``shape``, ``class``, metrics), then ``mean`` and ``median`` rows;
    a metric a row lacks is left empty."""
    names = sorted({k for r in rows.values() for k, v in r.items() if isinstance(v, float)})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["mesh", "shape", "class", *names])
    for stem, r in rows.items():
        writer.writerow([stem, r["shape"], r["class"], *[repr(r[n]) if n in r else "" for n in names]])
    for label, agg in (("mean", mean), ("median", median)):
        writer.writerow([label, "", "", *[repr(agg[n]) if n in agg else "" for n in names]])
    atomic_write_bytes(path, lambda f: f.write(text.getvalue().encode()))


def csv_path(output: Path) -> Path:
    path = output.with_suffix(".csv")
    if path == output:
        raise ValueError(f"output={output}: give the JSON path (the CSV is written next to it)")
    return path


def score_mesh(mesh: trimesh.Trimesh, pred_frame: str, gt: GroundTruth, cfg: EvalConfig, scan_points: np.ndarray | None = None) -> dict[str, float]:
    """Every metric of one ``mesh`` (its vertices in ``pred_frame``) against ``gt``, in ``cfg.frame``;
    ``scan_points: (S, 3)`` already in ``cfg.frame`` (the observed / unobserved split)."""
    unit = 1.0 if cfg.frame == "normalized" else 1.0 / gt.norm.scale  # one unit-sphere length, in the evaluation frame
    mesh = trimesh.Trimesh(to_frame(mesh.vertices, pred_frame, cfg.frame, gt), mesh.faces, process=False)
    return metrics.mesh_metrics(
        mesh, to_frame(gt.points, "source", cfg.frame, gt), gt.normals, cfg.num_points, cfg.seed,
        scan_points=scan_points, completion_threshold=cfg.completion_threshold * unit, observed_radius=cfg.observed_radius * unit,
        accuracy_percentile=cfg.accuracy_percentile, iou_points=cfg.iou_points, iou_padding=cfg.iou_padding,
    )  # fmt: skip


def evaluate(cfg: EvalConfig) -> dict:
    """Score every matched predicted mesh; returns and writes ``{"shapes", "mean", "median", ...}``."""
    if not cfg.pred or not cfg.gt or not cfg.output:
        raise ValueError("eval needs pred=MESH_DIR gt=DATA_DIR output=METRICS.json")
    for name in ("frame", "pred_frame", "scan_frame"):
        allowed = FRAMES if name == "frame" else ("auto", *FRAMES)
        if getattr(cfg, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(cfg, name)!r}")
    if cfg.gt_format not in ("auto", "data", "dvr"):
        raise ValueError(f"gt_format must be auto, data or dvr, got {cfg.gt_format!r}")
    pred_dir, gt_dir, output = Path(cfg.pred), Path(cfg.gt), Path(cfg.output)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: prediction folder not found")
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"{gt_dir}: ground-truth folder not found")
    table = csv_path(output)
    fmt = detect_format(gt_dir) if cfg.gt_format == "auto" else cfg.gt_format
    source = GroundTruthSource(gt_dir, fmt)
    default_frame = "normalized" if fmt == "data" else "source"
    pred_frame = default_frame if cfg.pred_frame == "auto" else cfg.pred_frame
    scan_frame = default_frame if cfg.scan_frame == "auto" else cfg.scan_frame
    scan_files = find_scan_files(Path(cfg.scans)) if cfg.scans else {}

    meshes = sorted(p for p in pred_dir.rglob("*") if p.suffix.lower() in MESH_SUFFIXES)
    rows, unmatched, failed, no_scan = {}, [], {}, []
    cache: dict[str, GroundTruth] = {}
    for path in tqdm(meshes, desc="eval", unit="mesh", disable=not cfg.progress):
        shape_id = source.match(path.stem)
        if shape_id is None:
            unmatched.append(str(path))
            continue
        try:
            mesh = trimesh.load(path, force="mesh", process=False)
            if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
                raise ValueError("no triangles")
        except Exception as e:
            failed[path.stem] = f"{path}: unreadable mesh ({e})"
            continue
        if shape_id not in cache:
            cache.clear()  # meshes of one shape are usually adjacent; keep one ground truth in memory
            cache[shape_id] = source.load(shape_id)
        gt = cache[shape_id]
        scan_points = None
        if cfg.scans:
            try:
                if path.stem not in scan_files:
                    raise ScanError(f"{path.stem}: no scan of that name in {cfg.scans}")
                scan_points = to_frame(read_scan(scan_files[path.stem]).points, scan_frame, cfg.frame, gt)
            except ScanError as e:
                no_scan.append(str(e))
        rows[path.stem] = {"shape": shape_id, "class": gt.cls, **score_mesh(mesh, pred_frame, gt, cfg, scan_points)}
    if not rows:
        raise DatasetError(f"{pred_dir}: no predicted mesh matches a shape in {gt_dir}")
    mean, median = aggregate(rows)
    protocol = {
        "gt_format": fmt, "frame": cfg.frame, "pred_frame": pred_frame, "scan_frame": scan_frame if cfg.scans else None,
        "num_points": cfg.num_points, "fscore_thresholds": "1% and 2% of the ground truth's bounding-box diagonal",
        "completion_threshold_unit_sphere": cfg.completion_threshold, "observed_radius_unit_sphere": cfg.observed_radius,
        "accuracy_percentile": cfg.accuracy_percentile, "iou_points": cfg.iou_points, "iou_padding": cfg.iou_padding, "seed": cfg.seed,
    }  # fmt: skip
    result = {
        "config": asdict(cfg), "protocol": protocol, "count": len(rows), "mean": mean, "median": median, "shapes": rows,
        "unmatched": unmatched, "failed": failed, "no_scan": no_scan, "csv": str(table),
    }  # fmt: skip
    write_csv(table, rows, mean, median)
    write_json(output, result)
    return result
