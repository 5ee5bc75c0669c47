"""``sdf-autodec eval``: predicted meshes vs ground truth → metrics JSON and CSV.

Ground truth (a prepared data directory, or a DVR folder of ``<id>/pointcloud.npz``) and the frames
it is scored in are described in ``shapes/ground_truth.py``. Predictions and scans said to be
``normalized`` are in the MODEL's frame.

A predicted mesh ``<stem>.ply`` is matched to the shape whose id is ``<stem>``, or ``<stem>`` without
a trailing ``_v<k>`` (a completed partial scan), or else the longest id that ``<stem>`` starts with,
followed by ``_``. Metrics are computed in ``frame`` (DeepSDF's unit sphere by default); absolute
thresholds are given in the unit-sphere frame and scaled with the shape when another frame is chosen,
so they cover the same part of the shape in both. ``docs/metrics.md`` has the protocol.

With ``references`` (the default), a folder written by ``complete`` or ``reconstruct`` is scored
beside its trivial answers (``shapes/references.py``): the mean shape and the retrieved training
shape (its ``references/`` meshes, skipped as predictions), the oracle nearest training shape (the
run its report names) and, with ``scans``, the scan itself; ``comparison`` says on which median
metrics ours beats each.

Writes ``output`` (JSON: config, protocol, mean, median, per-shape rows, unmatched and failed meshes,
``methods`` and ``comparison``) and, next to it, the same stem with ``.csv``: per method, one row per
mesh, then a ``mean`` and a ``median`` row.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from sdf_autodec.atomic import atomic_write_bytes
from sdf_autodec.storage.layout import MESH_SUFFIXES, DatasetError, write_json
from sdf_autodec.shapes import metrics
from sdf_autodec.shapes.ground_truth import FRAMES, GroundTruth, GroundTruthSource, detect_format, to_frame
from sdf_autodec.shapes.references import MEAN_SHAPE, REFERENCES, RETRIEVAL, TrainingSurfaces, scan_metrics
from sdf_autodec.shapes.train import load_trained
from sdf_autodec.shapes.scans import SCAN_SUFFIXES, ScanError, read_scan

REFERENCE_METHODS = ("mean_shape", "retrieval", "oracle", "scan")


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
    references: bool = True
    """Also score the trivial answers (``shapes/references.py``) beside each predicted mesh: the
    ``references/`` meshes an output folder of ``complete`` or ``reconstruct`` holds (mean shape,
    retrieval), the oracle nearest training shape of the run its report names, and, with ``scans``,
    the scan itself."""
    progress: bool = True
    """Show a progress bar."""


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


def write_csv(path: Path, methods: dict[str, tuple[dict, dict, dict]]) -> None:
    """Per method (``ours`` first, then the references), one row per mesh (``mesh``, ``shape``,
    ``class``, ``method``, metrics), then its ``mean`` and ``median`` rows; a metric a row lacks is
    left empty. ``methods``: method → (rows by mesh, mean, median)."""
    names = sorted({k for rows, _, _ in methods.values() for r in rows.values() for k, v in r.items() if isinstance(v, float)})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["mesh", "shape", "class", "method", *names])
    for method, (rows, mean, median) in methods.items():
        for stem, r in rows.items():
            writer.writerow([stem, r["shape"], r["class"], method, *[repr(r[n]) if n in r else "" for n in names]])
        for label, agg in (("mean", mean), ("median", median)):
            writer.writerow([label, "", "", method, *[repr(agg[n]) if n in agg else "" for n in names]])
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

    ref_dir = pred_dir / REFERENCES
    meshes = sorted(p for p in pred_dir.rglob("*") if p.suffix.lower() in MESH_SUFFIXES and ref_dir not in p.parents)
    baselines = _Baselines(pred_dir, cfg) if cfg.references else None
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
        if baselines is not None:
            baselines.score(path.stem, shape_id, gt, pred_frame, scan_points)
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
    methods = {"ours": (rows, mean, median)}
    if baselines is not None:
        result["methods"] = baselines.summary()
        result["methods"]["ours"] = {"count": len(rows), "mean": mean, "median": median}
        result["comparison"] = compare(result["methods"])
        methods.update({m: (e["shapes"], e["mean"], e["median"]) for m, e in result["methods"].items() if m != "ours" and e["count"]})
    write_csv(table, methods)
    write_json(output, result)
    return result


class _Baselines:
    """The reference rows of :func:`evaluate`, scored mesh by mesh beside ours."""

    def __init__(self, pred_dir: Path, cfg: EvalConfig):
        self.cfg, self.refs = cfg, pred_dir / REFERENCES
        self.rows: dict[str, dict] = {m: {} for m in REFERENCE_METHODS}
        self.missing: dict[str, dict] = {m: {} for m in REFERENCE_METHODS}
        self.mean_mesh = _load_mesh(self.refs / MEAN_SHAPE) if (self.refs / MEAN_SHAPE).is_file() else None
        self.oracle, self.oracle_error = None, ""
        run = _run_of(pred_dir)
        if run is None:
            self.oracle_error = f"{pred_dir}: no completion.json or reconstruction.json naming the run"
        else:
            try:
                self.oracle = TrainingSurfaces(load_trained(run, "cpu"))
            except Exception as e:  # a moved or deleted run: the other rows still stand
                self.oracle_error = f"{run}: run not loadable for the oracle ({type(e).__name__}: {e})"

    def score(self, stem: str, shape_id: str, gt: GroundTruth, pred_frame: str, scan_points: np.ndarray | None) -> None:
        cfg = self.cfg
        if self.mean_mesh is not None:
            self.rows["mean_shape"][stem] = {"shape": shape_id, "class": gt.cls, **score_mesh(self.mean_mesh, pred_frame, gt, cfg, scan_points)}
        else:
            self.missing["mean_shape"][stem] = f"{self.refs / MEAN_SHAPE}: not found"
        found = self.refs / RETRIEVAL / f"{stem}.ply"
        if found.is_file():
            self.rows["retrieval"][stem] = {"shape": shape_id, "class": gt.cls, **score_mesh(_load_mesh(found), pred_frame, gt, cfg, scan_points)}
        else:
            self.missing["retrieval"][stem] = f"{found}: not found"
        best = self.oracle.nearest(gt, cfg.num_points, cfg.seed) if self.oracle is not None else self.oracle_error
        if isinstance(best, str):
            self.missing["oracle"][stem] = best
        else:
            self.rows["oracle"][stem] = {"shape": shape_id, "class": gt.cls, "training_shape": best[0], **best[1][cfg.frame]}
        if scan_points is not None:
            self.rows["scan"][stem] = {"shape": shape_id, "class": gt.cls, **scan_metrics(scan_points, to_frame(gt.points, "source", cfg.frame, gt), cfg.num_points, cfg.seed)}
        else:
            self.missing["scan"][stem] = "no scan given (scans=)"

    def summary(self) -> dict:
        out = {}
        for m in REFERENCE_METHODS:
            mean, median = aggregate(self.rows[m]) if self.rows[m] else ({}, {})
            out[m] = {"count": len(self.rows[m]), "mean": mean, "median": median, "shapes": self.rows[m], "missing": self.missing[m]}
        return out


def compare(methods: dict) -> dict:
    """Whether ours beats each reference on median Chamfer (lower) and F@1% (higher): ``{method: {metric: bool}}``
    for the references that were scored."""
    ours = methods["ours"]["median"]
    verdict = {}
    for m, entry in methods.items():
        if m == "ours" or not entry["count"]:
            continue
        verdict[f"beats_{m}"] = {
            "chamfer": ours.get("chamfer", np.inf) < entry["median"].get("chamfer", np.inf),
            "fscore@1%": ours.get("fscore@1%", -np.inf) > entry["median"].get("fscore@1%", -np.inf),
        }
    return verdict


def _load_mesh(path: Path) -> trimesh.Trimesh:
    return trimesh.load(path, force="mesh", process=False)


def _run_of(pred_dir: Path) -> str | None:
    """The run a ``complete`` or ``reconstruct`` output folder's report names, if any."""
    for name in ("completion.json", "reconstruction.json"):
        try:
            return str(json.loads((pred_dir / name).read_text())["run"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None
