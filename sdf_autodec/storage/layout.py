"""The on-disk dataset layout: DeepSDF's, so that DeepSDF-era tools read it, plus our extras.

```
DATA_DIR/
  SdfSamples/<dataset>/<class>/<id>.npz                 pos, neg: (P, 4), (Q, 4) float32 rows x, y, z, sdf
  NormalizationParameters/<dataset>/<class>/<id>.npz    offset (3,), scale (): normalised = (x + offset) * scale
  SurfaceSamples/<dataset>/<class>/<id>.ply             surface points + normals, SOURCE frame (as DeepSDF)
  PartialScans/<dataset>/<class>/<id>_v<k>.npz          virtual depth scans, NORMALISED frame (ours)
  splits/{all,train,test}.json                          {"<dataset>": {"<class>": [ids]}}
  manifest.json                                         one entry per input mesh (status, reason, timings)
```
SDF samples and partial scans live in the normalised frame; ``pos`` holds samples with sdf > 0.
Written by ``data_prep``, read by ``sdf_autodec.shapes``; both go through this module, which holds
each format's one reader and one writer (``latents.npz`` too; DVR's clouds: ``storage.dvr``; the
packed store: ``storage.packed``).
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdf_autodec.atomic import atomic_write, atomic_write_bytes
from sdf_autodec.geometry.frames import background_rays
from sdf_autodec.geometry.normalize import Normalization
from sdf_autodec.optional import open3d

SDF_DIR = "SdfSamples"
NORM_DIR = "NormalizationParameters"
SURFACE_DIR = "SurfaceSamples"
SCAN_DIR = "PartialScans"
SPLIT_DIR = "splits"
MANIFEST = "manifest.json"
MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")
"""The mesh files this toolkit reads (``prep``'s crawl, ``eval``, ``render``), lower case."""


class DatasetError(RuntimeError):
    """A dataset directory or one of its files is missing or malformed."""


@dataclass(frozen=True, order=True)
class ShapeKey:
    """Where a shape sits in the layout: ``<dataset>/<class>/<id>``."""

    dataset: str
    cls: str
    id: str

    @property
    def rel(self) -> Path:
        return Path(self.dataset) / self.cls / self.id


@dataclass(frozen=True)
class DatasetLayout:
    """Paths of one data directory."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    def sdf(self, key: ShapeKey) -> Path:
        return self.root / SDF_DIR / key.rel.with_suffix(".npz")

    def normalization(self, key: ShapeKey) -> Path:
        return self.root / NORM_DIR / key.rel.with_suffix(".npz")

    def surface(self, key: ShapeKey) -> Path:
        return self.root / SURFACE_DIR / key.rel.with_suffix(".ply")

    def scan(self, key: ShapeKey, view: int) -> Path:
        return self.root / SCAN_DIR / key.rel.parent / f"{key.id}_v{view:02d}.npz"

    def split(self, name: str) -> Path:
        return self.root / SPLIT_DIR / f"{name}.json"

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def shard_manifest(self, index: int, count: int) -> Path:
        """The manifest a ``shard=index/count`` run writes (merged by a later unsharded run)."""
        return self.root / f"manifest.shard-{index}-of-{count}.json"

    def manifests(self) -> list[Path]:
        """Every manifest present: shard manifests first, then the main one (later wins when merged)."""
        return sorted(self.root.glob("manifest.shard-*-of-*.json")) + ([self.manifest] if self.manifest.is_file() else [])

    def split_keys(self, split: str) -> tuple[Path, list[ShapeKey]]:
        """The split file ``split`` names (a ``.json`` path, or a name under ``splits/``) and its keys."""
        path = Path(split) if Path(split).suffix == ".json" else self.split(split)
        return path, read_split(path)

    def find_normalization(self, shape_id: str) -> Path:
        """``NormalizationParameters/*/*/<id>.npz`` of the shape ``shape_id`` (exactly one must exist)."""
        base = self.root / NORM_DIR
        found = sorted(base.glob(f"*/*/{glob.escape(shape_id)}.npz"))
        if len(found) != 1:
            raise DatasetError(f"{base}: {'no' if not found else 'several'} normalisation parameters for shape {shape_id!r}")
        return found[0]

    def surface_keys(self) -> list[ShapeKey]:
        """Every shape that has surface samples, sorted."""
        base = self.root / SURFACE_DIR
        return sorted(ShapeKey(p.parent.parent.name, p.parent.name, p.stem) for p in base.glob("*/*/*.ply"))

    def sdf_keys(self) -> list[ShapeKey]:
        """Every shape that has SDF samples, sorted."""
        base = self.root / SDF_DIR
        return sorted(ShapeKey(p.parent.parent.name, p.parent.name, p.stem) for p in base.glob("*/*/*.npz"))


def write_sdf_samples(path: Path, points: np.ndarray, sdf: np.ndarray, agreement: np.ndarray | None = None) -> None:
    """Split ``points: (N, 3)``, ``sdf: (N,)`` into DeepSDF's ``pos`` (sdf > 0) and ``neg`` arrays.

    ``agreement: (N,)`` (how sure each sign is, in [0.5, 1]) is stored as ``pos_agreement`` and
    ``neg_agreement`` beside them; DeepSDF's readers ignore the extra arrays.
    """
    rows = np.concatenate([points, sdf[:, None]], axis=1).astype(np.float32)
    outside = rows[:, 3] > 0
    extra = {} if agreement is None else {"pos_agreement": agreement[outside].astype(np.float16), "neg_agreement": agreement[~outside].astype(np.float16)}
    atomic_write_bytes(path, lambda f: np.savez(f, pos=rows[outside], neg=rows[~outside], **extra))


def read_sdf_samples(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(pos: (P, 4), neg: (Q, 4))`` float32, validated."""
    try:
        with np.load(path) as data:
            pos, neg = data["pos"].astype(np.float32), data["neg"].astype(np.float32)
    except FileNotFoundError:
        raise DatasetError(f"{path}: SDF samples not found") from None
    except Exception as e:  # zip/npz/pickle errors come in many types
        raise DatasetError(f"{path}: unreadable SDF samples ({type(e).__name__}: {e})") from None
    for name, a in (("pos", pos), ("neg", neg)):
        if a.ndim != 2 or a.shape[1] != 4:
            raise DatasetError(f"{path}: '{name}' has shape {a.shape}, expected (N, 4)")
    pos, neg = pos[np.isfinite(pos).all(axis=1)], neg[np.isfinite(neg).all(axis=1)]
    if len(pos) == 0 or len(neg) == 0:
        raise DatasetError(f"{path}: no {'positive' if len(pos) == 0 else 'negative'} SDF samples")
    return pos, neg


def write_normalization(path: Path, norm: Normalization) -> None:
    atomic_write_bytes(path, lambda f: np.savez(f, offset=norm.offset, scale=np.float64(norm.scale)))


def read_normalization(path: Path) -> Normalization:
    try:
        with np.load(path) as data:
            return Normalization(offset=np.asarray(data["offset"], dtype=np.float64).reshape(3), scale=float(data["scale"]))
    except FileNotFoundError:
        raise DatasetError(f"{path}: normalisation parameters not found") from None
    except Exception as e:
        raise DatasetError(f"{path}: unreadable normalisation parameters ({type(e).__name__}: {e})") from None


def write_surface(path: Path, points: np.ndarray, normals: np.ndarray) -> None:
    """Surface samples ``points, normals: (M, 3)`` as a binary PLY point cloud with normals (readable
    by trimesh, Open3D and DeepSDF's evaluator)."""
    o3d = open3d()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.normals = o3d.utility.Vector3dVector(normals)

    def write(tmp: str) -> None:
        if not o3d.io.write_point_cloud(tmp, cloud):
            raise OSError(f"{tmp}: writing the point cloud failed")

    atomic_write(path, write)


def read_surface(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``points: (M, 3)`` float64 and ``normals: (M, 3)`` (None when the file has none) of a surface-samples PLY."""
    cloud = open3d().io.read_point_cloud(str(path))
    points = np.asarray(cloud.points)
    if len(points) == 0:
        raise DatasetError(f"{path}: no surface points")
    return points, (np.asarray(cloud.normals) if cloud.has_normals() else None)


def write_latents(path: Path, names: list[str], codes: np.ndarray) -> None:
    """``latents.npz``: ``names: (S,)`` and ``codes: (S, D)`` float32 (fitted by ``complete`` or ``reconstruct``)."""
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 2 or len(codes) != len(names):
        raise ValueError(f"{path}: {len(names)} names for codes of shape {codes.shape}")
    atomic_write_bytes(path, lambda f: np.savez(f, names=np.array(list(names)), codes=codes))


SCAN_KEYS = ("points", "depth", "intrinsics", "world_to_camera", "camera_origin", "camera_origins", "views", "normals", "background_rays")
"""The arrays a scan npz may hold, in the order they are written: ``points (M, 3)`` (required), the
virtual scanner's ``depth (H, W)``, ``intrinsics (3, 3)``, ``world_to_camera (4, 4)`` and its
``camera_origin (3,)``; or, for several views, ``camera_origins (M, 3)`` (the camera that saw each
point) and their ``views``; optionally ``normals (M, 3)`` (outwards) and ``background_rays (B, 6)``
(camera centre and unit direction of rays that hit nothing; a scan with ``depth`` gets them from its
background pixels instead)."""


def write_scan(path: Path, points: np.ndarray, **arrays) -> None:
    """The one writer of scan npz files: ``points (M, 3)`` and any of ``SCAN_KEYS`` (None: left out)."""
    unknown = sorted(set(arrays) - set(SCAN_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown scan arrays {unknown}; a scan holds {', '.join(SCAN_KEYS)}")
    data = {"points": points, **{k: arrays[k] for k in SCAN_KEYS[1:] if arrays.get(k) is not None}}
    atomic_write_bytes(path, lambda f: np.savez(f, **data))


def read_scan_arrays(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """The one reader of scan npz files: ``points (M, 3)`` float64, the camera (``(3,)`` one camera,
    ``(M, 3)`` one per point, or None), ``normals (M, 3)`` or None, and the rays that hit nothing,
    ``(B, 6)`` float64 (origin, unit direction) or None: stored as ``background_rays`` or, for a
    virtual scan, from the background pixels of its ``depth``. Raises ``DatasetError`` naming the file."""
    try:
        with np.load(path) as data:
            if "points" not in data:
                raise DatasetError(f"{path}: npz has no 'points' array (has {sorted(data.keys())})")
            points = np.asarray(data["points"], dtype=np.float64)
            camera = normals = background = None
            if "camera_origins" in data:
                camera = np.asarray(data["camera_origins"], dtype=np.float64)
                if camera.shape != points.shape:
                    raise DatasetError(f"{path}: camera_origins has shape {camera.shape}, expected {points.shape} (one per point)")
            elif "camera_origin" in data:
                camera = np.asarray(data["camera_origin"], dtype=np.float64).reshape(3)
            elif "world_to_camera" in data:
                m = np.asarray(data["world_to_camera"], dtype=np.float64).reshape(4, 4)
                camera = -m[:3, :3].T @ m[:3, 3]
            if "normals" in data:
                normals = np.asarray(data["normals"], dtype=np.float64)
            if "background_rays" in data:
                background = np.asarray(data["background_rays"], dtype=np.float64)
                if background.ndim != 2 or background.shape[1] != 6:
                    raise DatasetError(f"{path}: background_rays has shape {background.shape}, expected (B, 6)")
            elif all(k in data for k in ("depth", "intrinsics", "world_to_camera")):
                background = background_rays(data["depth"], np.asarray(data["intrinsics"], np.float64), np.asarray(data["world_to_camera"], np.float64)).astype(np.float64)
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"{path}: scan not found") from None
    except Exception as e:
        raise DatasetError(f"{path}: unreadable npz ({type(e).__name__}: {e})") from None
    return points, camera, normals, background


def read_latents(path: Path) -> tuple[list[str], np.ndarray]:
    """Names and codes ``(S, D)`` float32 of a ``latents.npz``."""
    try:
        with np.load(path) as data:
            names, codes = [str(x) for x in data["names"]], np.asarray(data["codes"], dtype=np.float32)
    except FileNotFoundError:
        raise DatasetError(f"{path}: latents file not found") from None
    except Exception as e:
        raise DatasetError(f"{path}: unreadable latents file ({type(e).__name__}: {e})") from None
    if codes.ndim != 2 or len(codes) != len(names):
        raise DatasetError(f"{path}: {len(names)} names for codes of shape {codes.shape}")
    return names, codes


def read_manifest_entries(layout: DatasetLayout) -> dict:
    """Every mesh entry of the data directory's manifests (shards first, the main one last, later
    entries winning), keyed ``<class>/<id>``; ``{}`` when there is none. An unreadable manifest is skipped."""
    entries: dict = {}
    for path in layout.manifests():
        try:
            entries.update(json.loads(path.read_text()).get("shapes", {}))
        except (OSError, ValueError, AttributeError):
            continue
    return entries


def read_manifest_config(layout: DatasetLayout) -> dict:
    """The ``prep`` configuration the main manifest records (``{}`` when there is none or it is unreadable)."""
    try:
        config = json.loads(layout.manifest.read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return config if isinstance(config, dict) else {}


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=False).encode()))


def split_to_keys(split: dict) -> list[ShapeKey]:
    """``{"<dataset>": {"<class>": [ids]}}`` → keys, in file order."""
    if not isinstance(split, dict):
        raise DatasetError("split must map dataset → class → list of ids")
    keys = []
    for dataset, classes in split.items():
        if not isinstance(classes, dict):
            raise DatasetError(f"split entry {dataset!r} must map class → list of ids")
        for cls, ids in classes.items():
            keys.extend(ShapeKey(dataset, cls, str(i)) for i in ids)
    return keys


def keys_to_split(keys: list[ShapeKey]) -> dict:
    split: dict = {}
    for k in keys:
        split.setdefault(k.dataset, {}).setdefault(k.cls, []).append(k.id)
    return split


def read_split(path: Path) -> list[ShapeKey]:
    try:
        return split_to_keys(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        raise DatasetError(f"{path}: split file not found") from None
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
