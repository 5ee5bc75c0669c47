"""Ground truth for scoring: a test shape's surface samples and the frames they are scored in.

Two forms (``gt_format``):

- ``data``: a prepared data directory — ``SurfaceSamples/<dataset>/<class>/<id>.ply`` (points and
  outward normals, source frame) with ``NormalizationParameters/<...>/<id>.npz`` (the model's frame);
- ``dvr``: a folder of ``<id>/pointcloud.npz`` (Occupancy Networks / DVR: ``points``, ``normals``,
  float16, in about [-0.5, 0.5]^3, their source frame). Their normals have arbitrary signs: they are
  deduplicated and oriented (``geometry.surface.orient_normals``) before the inside test of the IoU.

The frame ``normalized`` is DeepSDF's unit sphere: the stored normalisation of a data directory
prepped with ``normalization=deepsdf`` (the default, read from its manifest), otherwise DeepSDF's
normalisation computed from the ground-truth samples. ``GroundTruth.model_norm`` is the MODEL's frame
(the stored normalisation, whatever its convention); for ``dvr`` the same unit sphere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdf_autodec.geometry.layout import SURFACE_DIR, DatasetError, DatasetLayout, ShapeKey, read_normalization
from sdf_autodec.geometry.normalize import Normalization, deepsdf_normalization
from sdf_autodec.geometry.surface import deduplicate, orient_normals
from sdf_autodec.optional import open3d

VIEW_SUFFIX = re.compile(r"_v\d+$")
DVR_CLOUD = "pointcloud.npz"
FRAMES = ("normalized", "source")


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


def read_dvr_cloud(path: Path, orient: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``points, normals: (M, 3)`` float64 of a DVR ``pointcloud.npz``, deduplicated, normals oriented
    outwards (left with the file's arbitrary signs when not ``orient``: seconds saved where only the points matter)."""
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
    if orient:
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

    def load(self, shape_id: str, normals: bool = True) -> GroundTruth:
        """One shape's ground truth; without ``normals`` a DVR cloud's normals keep their arbitrary signs."""
        if self.format == "data":
            key = self.keys[shape_id]
            points, normals = read_surface(self.layout.surface(key))
            stored = read_normalization(self.layout.normalization(key))
            return GroundTruth(key.cls, points, normals, stored if self.convention == "deepsdf" else deepsdf_normalization(points), stored)
        points, oriented = read_dvr_cloud(self.root / shape_id / DVR_CLOUD, orient=normals)
        norm = deepsdf_normalization(points)
        return GroundTruth("", points, oriented, norm, norm)


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
