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

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdf_autodec.geometry.normalize import Normalization, deepsdf_normalization
from sdf_autodec.geometry.surface import deduplicate, orient_normals
from sdf_autodec.storage.dvr import DVR_CLOUD, dvr_ids, read_dvr_cloud
from sdf_autodec.storage.layout import SURFACE_DIR, DatasetError, DatasetLayout, ShapeKey, read_manifest_config, read_normalization, read_surface

VIEW_SUFFIX = re.compile(r"_v\d+$")
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
    if dvr_ids(gt):
        return "dvr"
    raise DatasetError(f"{gt}: neither a prepared data directory (no {SURFACE_DIR}/) nor a DVR folder (no */{DVR_CLOUD})")


def ground_truth_keys(data_dir: Path) -> dict[str, ShapeKey]:
    """The shapes of a data directory that have surface samples, by id."""
    keys = {key.id: key for key in DatasetLayout(data_dir).surface_keys()}
    if not keys:
        raise DatasetError(f"{data_dir / SURFACE_DIR}: no surface samples (is {data_dir} a prepared data directory?)")
    return keys


def _dvr_ground_truth(path: Path, orient: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``points, normals: (M, 3)`` float64 of a DVR ``pointcloud.npz``, deduplicated, normals oriented
    outwards (left with the file's arbitrary signs when not ``orient``: seconds saved where only the points matter)."""
    points, normals = deduplicate(*read_dvr_cloud(path))
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
            self.ids = dvr_ids(root)
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
        points, oriented = _dvr_ground_truth(self.root / shape_id / DVR_CLOUD, orient=normals)
        norm = deepsdf_normalization(points)
        return GroundTruth("", points, oriented, norm, norm)


def prep_convention(layout: DatasetLayout) -> str:
    """The ``normalization`` a data directory was prepped with (``deepsdf`` when its manifest does not say)."""
    return str(read_manifest_config(layout).get("normalization", "deepsdf"))


def to_frame(points: np.ndarray, have: str, want: str, gt: GroundTruth) -> np.ndarray:
    """``points: (N, 3)`` from frame ``have`` (``normalized``: the model's, or ``source``) to the
    evaluation frame ``want`` (``normalized``: the unit sphere, or ``source``)."""
    points = gt.model_norm.invert(points) if have == "normalized" else np.asarray(points, dtype=np.float64)
    return gt.norm.apply(points) if want == "normalized" else points
