"""``sdf-autodec prep``: a folder of meshes → a data directory in DeepSDF's layout.

For each mesh: load and validate → DeepSDF normalisation → SDF samples → surface samples →
virtual partial scans → write (each file atomically). A mesh that fails is recorded in
``manifest.json`` with its reason and the batch goes on. A re-run skips meshes the manifest marks
``ok`` whose files are all present (resume). Splits ``all``/``train``/``test`` are written last.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from data_prep.mesh_io import MESH_SUFFIXES, MeshError, load_mesh
from data_prep.sampling import SampleConfig, raycasting_scene, sample_sdf, sample_surface
from data_prep.scanner import ScanConfig, random_camera, save_scan, scan_mesh
from sdf_autodec.atomic import atomic_write
from sdf_autodec.geometry.layout import (
    DatasetLayout,
    ShapeKey,
    keys_to_split,
    write_json,
    write_normalization,
    write_sdf_samples,
)
from sdf_autodec.geometry.normalize import deepsdf_normalization
from sdf_autodec.optional import open3d


@dataclass
class PrepConfig:
    """Preprocessing of a mesh folder into a data directory."""

    input: str = ""
    """Folder of meshes: flat (class = folder name) or one sub-folder per class."""
    output: str = ""
    """Data directory to write (DeepSDF layout)."""
    dataset: str = ""
    """Dataset name in the layout (``SdfSamples/<dataset>/...``); default: the input folder's name."""
    samples: SampleConfig = field(default_factory=SampleConfig)
    """SDF and surface sampling."""
    scans: ScanConfig = field(default_factory=ScanConfig)
    """Virtual partial scans (for completion)."""
    test_fraction: float = 0.2
    """Fraction of each class held out in ``splits/test.json`` (deterministic by seed)."""
    seed: int = 0
    """Seed of every random draw; each mesh derives its own from it and its id."""
    overwrite: bool = False
    """Redo meshes already marked ok in the manifest (default: skip them, i.e. resume)."""


@dataclass
class PrepReport:
    """What a prep run did."""

    ok: list[str]
    failed: dict[str, str]
    skipped: list[str]
    manifest: Path


def crawl_meshes(input_dir: Path) -> list[tuple[str, Path]]:
    """``(class, path)`` of every mesh under ``input_dir``, sorted. Class = first sub-folder, else the folder's name."""
    if not input_dir.is_dir():
        raise FileNotFoundError(f"{input_dir}: input folder not found")
    found = []
    for path in sorted(input_dir.rglob("*")):
        if path.is_file() and path.suffix.lower() in MESH_SUFFIXES:
            rel = path.relative_to(input_dir)
            cls = rel.parts[0] if len(rel.parts) > 1 else input_dir.resolve().name
            found.append((cls, path))
    return found


def shape_rng(seed: int, key: ShapeKey) -> np.random.Generator:
    """A generator that depends only on the run seed and the shape, not on order or worker count."""
    return np.random.default_rng([seed, zlib.crc32(str(key.rel).encode())])


def write_surface(path: Path, points: np.ndarray, normals: np.ndarray) -> None:
    """Binary PLY point cloud with normals (readable by trimesh, Open3D and DeepSDF's evaluator)."""
    o3d = open3d()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.normals = o3d.utility.Vector3dVector(normals)
    atomic_write(path, lambda tmp: _check(o3d.io.write_point_cloud(tmp, cloud), tmp))


def _check(ok: bool, path: str) -> None:
    if not ok:
        raise OSError(f"{path}: writing failed")


def outputs_of(layout: DatasetLayout, key: ShapeKey, cfg: PrepConfig) -> list[Path]:
    return [layout.sdf(key), layout.normalization(key), layout.surface(key)] + [layout.scan(key, v) for v in range(cfg.scans.views)]


def prep_mesh(path: Path, key: ShapeKey, layout: DatasetLayout, cfg: PrepConfig) -> dict:
    """Process one mesh; returns its manifest entry (raises MeshError for bad input)."""
    rng = shape_rng(cfg.seed, key)
    t = {}
    t0 = time.perf_counter()
    mesh = load_mesh(path)
    t["load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    norm = deepsdf_normalization(mesh.vertices)
    normalised = trimesh.Trimesh(norm.apply(mesh.vertices), mesh.faces, process=False)
    t["normalise"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    points, sdf = sample_sdf(normalised, cfg.samples, rng)
    t["sdf"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    surf_points, surf_normals = sample_surface(normalised, cfg.samples.surface_points, rng)
    scene = raycasting_scene(normalised)
    scans = [scan_mesh(normalised, random_camera(cfg.scans, rng), scene) for _ in range(cfg.scans.views)]
    t["surface_and_scans"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_normalization(layout.normalization(key), norm)
    write_surface(layout.surface(key), norm.invert(surf_points), surf_normals)  # source frame, as DeepSDF
    for view, scan in enumerate(scans):
        save_scan(layout.scan(key, view), scan)
    write_sdf_samples(layout.sdf(key), points, sdf)
    t["write"] = time.perf_counter() - t0
    return {
        "source": str(path),
        "status": "ok",
        "reason": "",
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
        "watertight": bool(mesh.is_watertight),
        "num_pos": int((sdf > 0).sum()),
        "num_neg": int((sdf <= 0).sum()),
        "scan_points": [len(s.points) for s in scans],
        "timings_s": {k: round(v, 4) for k, v in t.items()},
    }


def split_keys(keys: list[ShapeKey], test_fraction: float, seed: int) -> tuple[list[ShapeKey], list[ShapeKey]]:
    """Per class, a seeded shuffle; ``round(test_fraction * n)`` go to test (at least 1 when n ≥ 2 and fraction > 0)."""
    train, test = [], []
    by_class: dict[tuple[str, str], list[ShapeKey]] = {}
    for k in keys:
        by_class.setdefault((k.dataset, k.cls), []).append(k)
    for (_, cls), members in sorted(by_class.items()):
        members = sorted(members, key=lambda k: k.id)
        order = np.random.default_rng([seed, zlib.crc32(cls.encode())]).permutation(len(members))
        n_test = int(round(test_fraction * len(members)))
        if test_fraction > 0 and len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        chosen = {int(i) for i in order[:n_test]}
        for i, k in enumerate(members):
            (test if i in chosen else train).append(k)
    return train, test


def prep_dataset(cfg: PrepConfig) -> PrepReport:
    """Run the whole preprocessing; see the module docstring."""
    if not cfg.input or not cfg.output:
        raise ValueError("prep needs input=MESH_DIR and output=DATA_DIR")
    input_dir, layout = Path(cfg.input), DatasetLayout(cfg.output)
    dataset = cfg.dataset or input_dir.resolve().name
    meshes = crawl_meshes(input_dir)
    if not meshes:
        raise FileNotFoundError(f"{input_dir}: no meshes ({', '.join(MESH_SUFFIXES)}) found")
    manifest = json.loads(layout.manifest.read_text()) if layout.manifest.is_file() else {}
    entries: dict = manifest.get("shapes", {})
    report = PrepReport(ok=[], failed={}, skipped=[], manifest=layout.manifest)
    seen: dict[str, Path] = {}
    for cls, path in tqdm(meshes, desc="prep", unit="mesh"):
        key = ShapeKey(dataset, cls, path.stem)
        name = f"{cls}/{key.id}"
        if name in seen:
            entries[f"{name}@{path}"] = {"source": str(path), "status": "failed", "reason": f"duplicate shape id {name!r} (also {seen[name]})"}
            report.failed[str(path)] = entries[f"{name}@{path}"]["reason"]
            continue
        seen[name] = path
        previous = entries.get(name, {})
        if not cfg.overwrite and previous.get("status") == "ok" and all(p.is_file() for p in outputs_of(layout, key, cfg)):
            report.skipped.append(name)
            report.ok.append(name)
            continue
        try:
            entries[name] = prep_mesh(path, key, layout, cfg)
            report.ok.append(name)
        except Exception as e:  # noqa: BLE001 — one bad mesh must never stop the batch
            message = str(e).strip().splitlines()[0] if str(e).strip() else ""
            if not isinstance(e, (MeshError, ValueError)):
                message = f"unexpected {type(e).__name__}: {message}"
            reason = message if str(path) in message else f"{path}: {message}"
            entries[name] = {"source": str(path), "status": "failed", "reason": reason}
            report.failed[name] = reason
            tqdm.write(f"skipped {reason}")
        write_json(layout.manifest, {"version": 1, "dataset": dataset, "config": asdict(cfg), "shapes": entries})
    ok_keys = [ShapeKey(dataset, *n.split("/", 1)) for n in report.ok]
    train, test = split_keys(ok_keys, cfg.test_fraction, cfg.seed)
    for split_name, keys in (("all", ok_keys), ("train", train), ("test", test)):
        write_json(layout.split(split_name), keys_to_split(keys))
    write_json(layout.manifest, {"version": 1, "dataset": dataset, "config": asdict(cfg), "shapes": entries})
    return report
