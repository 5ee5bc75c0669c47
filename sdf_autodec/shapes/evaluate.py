"""``sdf-autodec eval``: predicted meshes vs a data directory's surface samples → metrics JSON.

A predicted mesh ``<stem>.ply`` is matched to the ground-truth shape whose id is ``<stem>``, or
``<stem>`` without a trailing ``_v<k>`` (the name of a completed partial scan). Metrics are computed
in the normalised frame (see ``shapes.metrics`` for the conventions).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from sdf_autodec.geometry.layout import SURFACE_DIR, DatasetError, DatasetLayout, ShapeKey, read_normalization, write_json
from sdf_autodec.optional import open3d
from sdf_autodec.shapes.metrics import mesh_metrics

MESH_SUFFIXES = (".ply", ".obj", ".off", ".stl", ".glb")
VIEW_SUFFIX = re.compile(r"_v\d+$")


@dataclass
class EvalConfig:
    """Evaluation of predicted meshes against ground truth."""

    pred: str = ""
    """Folder of predicted meshes (searched recursively)."""
    gt: str = ""
    """Data directory with SurfaceSamples/ and NormalizationParameters/."""
    output: str = ""
    """Metrics JSON to write."""
    pred_frame: str = "normalized"
    """Frame of the predicted meshes: ``normalized`` or ``source``."""
    num_points: int = 30_000
    """Surface points per side (DeepSDF: 30000)."""
    seed: int = 0
    """Seed of the surface sampling."""
    progress: bool = True
    """Show a progress bar."""


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


def aggregate(rows: dict[str, dict]) -> tuple[dict, dict]:
    names = sorted({k for r in rows.values() for k, v in r.items() if isinstance(v, float)})
    mean = {n: float(np.mean([r[n] for r in rows.values() if n in r])) for n in names}
    median = {n: float(statistics.median([r[n] for r in rows.values() if n in r])) for n in names}
    return mean, median


def evaluate(cfg: EvalConfig) -> dict:
    """Score every matched predicted mesh; returns and writes ``{"shapes", "mean", "median", ...}``."""
    if not cfg.pred or not cfg.gt or not cfg.output:
        raise ValueError("eval needs pred=MESH_DIR gt=DATA_DIR output=METRICS.json")
    if cfg.pred_frame not in ("normalized", "source"):
        raise ValueError(f"pred_frame must be 'normalized' or 'source', got {cfg.pred_frame!r}")
    pred_dir, data_dir = Path(cfg.pred), Path(cfg.gt)
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"{pred_dir}: prediction folder not found")
    gt = ground_truth_keys(data_dir)
    layout = DatasetLayout(data_dir)
    meshes = sorted(p for p in pred_dir.rglob("*") if p.suffix.lower() in MESH_SUFFIXES)
    rows, unmatched, failed = {}, [], {}
    for path in tqdm(meshes, desc="eval", unit="mesh", disable=not cfg.progress):
        shape_id = path.stem if path.stem in gt else VIEW_SUFFIX.sub("", path.stem)
        if shape_id not in gt:
            unmatched.append(str(path))
            continue
        key = gt[shape_id]
        norm = read_normalization(layout.normalization(key))
        try:
            mesh = trimesh.load(path, force="mesh", process=False)
            if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
                raise ValueError("no triangles")
        except Exception as e:
            failed[path.stem] = f"{path}: unreadable mesh ({e})"
            continue
        if cfg.pred_frame == "source":
            mesh = trimesh.Trimesh(norm.apply(mesh.vertices), mesh.faces, process=False)
        points, normals = read_surface(layout.surface(key))
        rows[path.stem] = {"shape": shape_id, "class": key.cls, **mesh_metrics(mesh, norm.apply(points), normals, cfg.num_points, cfg.seed)}
    if not rows:
        raise DatasetError(f"{pred_dir}: no predicted mesh matches a shape in {data_dir / SURFACE_DIR}")
    mean, median = aggregate(rows)
    result = {"config": asdict(cfg), "count": len(rows), "mean": mean, "median": median, "shapes": rows, "unmatched": unmatched, "failed": failed}
    write_json(Path(cfg.output), result)
    return result
