"""``sdf-autodec prep``: a folder of meshes → a data directory in DeepSDF's layout.

For each mesh: size checks → load and validate → DeepSDF normalisation → clean-up, outer surface,
SDF samples with robust signs (:mod:`data_prep.sampling`) → QA → virtual partial scans → write
(each file atomically, SDF samples last). A mesh that cannot be read is ``failed``; one whose QA is
beyond the thresholds is ``rejected``; both are recorded with their reason in the manifest and the
batch goes on. Meshes run in a process pool (``workers``; started with ``spawn``, so a script that
calls :func:`prep_dataset` with several workers needs the usual ``if __name__ == "__main__":``
guard; each worker runs its native libraries on one thread: :func:`sdf_autodec.optional.single_threaded`);
every random draw is keyed by the shape, so results do not depend on the worker count.

Resuming: a mesh the manifests mark ``ok`` whose files all exist is skipped. A killed run leaves
no half-written file (temporary names are renamed into place), and a mesh whose manifest entry was
not written is simply done again. ``shard=i/n`` processes every n-th mesh and writes
``manifest.shard-i-of-n.json``; a final run without ``shard`` merges the shard manifests (skipping
all finished meshes) and writes ``manifest.json``, the splits and the packed training store
(``geometry.packed``).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from data_prep.crawl import MeshSource, crawl_meshes, parse_shard
from data_prep.mesh_io import MeshError, load_mesh
from data_prep.raycast import raycasting_scene
from data_prep.sampling import SampleConfig, sample_shape
from data_prep.scanner import ScanConfig, random_camera, save_scan, scan_mesh
from sdf_autodec.atomic import remove_temporaries
from sdf_autodec.errors import first_line
from sdf_autodec.storage.layout import (
    MESH_SUFFIXES,
    DatasetLayout,
    ShapeKey,
    keys_to_split,
    read_manifest_entries,
    read_split,
    write_json,
    write_normalization,
    write_sdf_samples,
    write_surface,
)
from sdf_autodec.geometry.normalize import NORMALIZATIONS, normalization
from sdf_autodec.storage.packed import open_packed
from sdf_autodec.optional import single_threaded
from sdf_autodec.seeds import keyed_rng


@dataclass
class QAConfig:
    """When a mesh is rejected rather than written."""

    max_dropped_fraction: float = 0.02
    """Reject when more than this fraction of samples had signs too unsure to keep."""
    max_disagreement_rate: float = 0.2
    """Reject when the rays disagree (not unanimous) on more than this fraction of samples."""
    max_faces: int = 5_000_000
    """Refuse meshes with more faces (memory and time stay bounded)."""
    max_file_mb: float = 1024.0
    """Refuse mesh files larger than this before reading them."""


@dataclass
class PrepConfig:
    """Preprocessing of a mesh folder into a data directory."""

    input: str = ""
    """Folder of meshes: flat, class folders, or ShapeNetCore v1/v2 (see ``data_prep.crawl``)."""
    output: str = ""
    """Data directory to write (DeepSDF layout)."""
    dataset: str = ""
    """Dataset name in the layout (``SdfSamples/<dataset>/...``); default: the split's, else the input folder's name."""
    split: str = ""
    """Optional DeepSDF split json: only the (class, id) pairs it lists are processed."""
    normalization: str = "deepsdf"
    """Frame of the samples: ``deepsdf`` (unit sphere, DeepSDF) or ``unit_cube`` (longest side 1, the
    Occupancy Networks / DVR ShapeNet frame); see ``sdf_autodec.geometry.normalize``."""
    samples: SampleConfig = field(default_factory=SampleConfig)
    """SDF and surface sampling, sign voting."""
    scans: ScanConfig = field(default_factory=ScanConfig)
    """Virtual partial scans (for completion)."""
    qa: QAConfig = field(default_factory=QAConfig)
    """Rejection thresholds."""
    test_fraction: float = 0.2
    """Fraction of each class held out in ``splits/test.json`` (deterministic by seed)."""
    seed: int = 0
    """Seed of every random draw; each mesh derives its own from it and its name."""
    workers: int = 0
    """Worker processes (0 = one per CPU core; 1 = run in this process)."""
    shard: str = ""
    """``i/n``: process only every n-th mesh starting at i (for cluster job arrays)."""
    overwrite: bool = False
    """Redo meshes already marked ok (default: skip them, i.e. resume)."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class PrepReport:
    """What a prep run did; names are ``<class>/<id>``."""

    ok: list[str]
    rejected: dict[str, str]
    failed: dict[str, str]
    skipped: list[str]
    manifest: Path


def shape_rng(seed: int, key: ShapeKey) -> np.random.Generator:
    """A generator that depends only on the run seed and the shape, not on order or worker count."""
    return keyed_rng(seed, str(key.rel))


def outputs_of(layout: DatasetLayout, key: ShapeKey, cfg: PrepConfig) -> list[Path]:
    """Every file a finished mesh has (the SDF samples, written last, come last)."""
    return [layout.normalization(key), layout.surface(key)] + [layout.scan(key, v) for v in range(cfg.scans.views)] + [layout.sdf(key)]


def qa_verdict(qa: dict, limits: QAConfig) -> str:
    """Empty when the QA figures are within ``limits``, else the reason for rejection."""
    if qa["dropped_fraction"] > limits.max_dropped_fraction:
        return f"{qa['dropped_fraction']:.1%} of samples had unsure signs (limit {limits.max_dropped_fraction:.1%})"
    if qa["sign_disagreement_rate"] > limits.max_disagreement_rate:
        return f"rays disagreed on {qa['sign_disagreement_rate']:.1%} of samples (limit {limits.max_disagreement_rate:.1%})"
    return ""


def prep_mesh(source: MeshSource, dataset: str, output: str, cfg: PrepConfig) -> dict:
    """Process one mesh; returns its manifest entry. Raises MeshError/ValueError for bad input."""
    layout, key = DatasetLayout(output), ShapeKey(dataset, source.cls, source.id)
    for out in outputs_of(layout, key, cfg):  # what a run killed mid-write left of this mesh
        remove_temporaries(out)
    entry: dict = {"source": str(source.path), "status": "ok", "reason": ""}
    size_mb = source.path.stat().st_size / 2**20
    if size_mb > cfg.qa.max_file_mb:
        return {**entry, "status": "rejected", "reason": f"{source.path}: file of {size_mb:.0f} MB exceeds max_file_mb={cfg.qa.max_file_mb:.0f}"}
    rng = shape_rng(cfg.seed, key)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    mesh = load_mesh(source.path)
    t["load"] = time.perf_counter() - t0
    entry.update(vertices=len(mesh.vertices), faces=len(mesh.faces))
    if len(mesh.faces) > cfg.qa.max_faces:
        return {**entry, "status": "rejected", "reason": f"{source.path}: {len(mesh.faces)} faces exceed max_faces={cfg.qa.max_faces}"}
    t0 = time.perf_counter()
    norm = normalization(mesh.vertices, cfg.normalization)
    normalised = trimesh.Trimesh(norm.apply(mesh.vertices), mesh.faces, process=False)
    t["normalise"] = time.perf_counter() - t0
    samples = sample_shape(normalised, cfg.samples, rng)
    t.update(samples.timings)
    entry["qa"] = samples.qa
    reason = qa_verdict(samples.qa, cfg.qa)
    if reason:
        for stale in outputs_of(layout, key, cfg):  # a rejected mesh must not look finished
            stale.unlink(missing_ok=True)
        return {**entry, "status": "rejected", "reason": f"{source.path}: {reason}", "timings_s": _round(t)}
    t0 = time.perf_counter()
    scene = raycasting_scene(samples.outer)
    scans = [scan_mesh(samples.outer, random_camera(cfg.scans, rng), scene) for _ in range(cfg.scans.views)]
    t["scans"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_normalization(layout.normalization(key), norm)
    write_surface(layout.surface(key), norm.invert(samples.surface_points), samples.surface_normals)  # source frame, as DeepSDF
    for view, scan in enumerate(scans):
        save_scan(layout.scan(key, view), scan)
    write_sdf_samples(layout.sdf(key), samples.points, samples.sdf, samples.agreement)
    t["write"] = time.perf_counter() - t0
    entry.update(
        num_pos=int((samples.sdf > 0).sum()),
        num_neg=int((samples.sdf <= 0).sum()),
        scan_points=[len(s.points) for s in scans],
        timings_s=_round(t),
    )
    return entry


def _round(t: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in t.items()}


def _run_one(source: MeshSource, dataset: str, output: str, cfg: PrepConfig) -> tuple[str, dict]:
    """``prep_mesh`` that never raises: a failure becomes a ``failed`` entry naming the file."""
    try:
        return source.name, prep_mesh(source, dataset, output, cfg)
    except Exception as e:  # noqa: BLE001 — one bad mesh must never stop the batch
        message = first_line(e, fallback="")
        if not isinstance(e, (MeshError, ValueError)):
            message = f"unexpected {type(e).__name__}: {message}"
        reason = message if str(source.path) in message else f"{source.path}: {message}"
        return source.name, {"source": str(source.path), "status": "failed", "reason": reason}


def split_keys(keys: list[ShapeKey], test_fraction: float, seed: int) -> tuple[list[ShapeKey], list[ShapeKey]]:
    """Per class, a seeded shuffle; ``round(test_fraction * n)`` go to test (at least 1 when n ≥ 2 and fraction > 0)."""
    train, test = [], []
    by_class: dict[tuple[str, str], list[ShapeKey]] = {}
    for k in keys:
        by_class.setdefault((k.dataset, k.cls), []).append(k)
    for (_, cls), members in sorted(by_class.items()):
        members = sorted(members, key=lambda k: k.id)
        order = keyed_rng(seed, cls).permutation(len(members))
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
    if cfg.normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {cfg.normalization!r}")
    split = read_split(Path(cfg.split)) if cfg.split else None
    dataset = cfg.dataset or (split[0].dataset if split else Path(cfg.input).resolve().name)
    sources = crawl_meshes(cfg.input, split)
    if not sources:
        raise FileNotFoundError(f"{cfg.input}: no meshes ({', '.join(MESH_SUFFIXES)}){' named in ' + cfg.split if split else ''} found")
    shard_index, shard_count = parse_shard(cfg.shard)
    layout = DatasetLayout(cfg.output)
    layout.root.mkdir(parents=True, exist_ok=True)
    manifest_path = layout.manifest if shard_count == 1 else layout.shard_manifest(shard_index, shard_count)
    previous = read_manifest_entries(layout)  # an unreadable manifest only costs a redo of its meshes
    entries: dict = {}
    report = PrepReport(ok=[], rejected={}, failed={}, skipped=[], manifest=manifest_path)

    unique: dict[str, MeshSource] = {}
    for source in sources:
        if source.name in unique:
            entries[f"{source.name}@{source.path}"] = {"source": str(source.path), "status": "failed", "reason": f"{source.path}: duplicate shape id {source.name!r} (also {unique[source.name].path})"}
        else:
            unique[source.name] = source
    mine = list(unique.values())[shard_index::shard_count]
    todo = []
    for source in mine:
        old = previous.get(source.name, {})
        key = ShapeKey(dataset, source.cls, source.id)
        if not cfg.overwrite and old.get("status") == "ok" and all(p.is_file() for p in outputs_of(layout, key, cfg)):
            entries[source.name] = old
            report.skipped.append(source.name)
        else:
            todo.append(source)

    def save() -> None:
        write_json(manifest_path, {"version": 1, "dataset": dataset, "shard": cfg.shard, "config": asdict(cfg), "shapes": dict(sorted(entries.items()))})

    workers = min(cfg.workers or os.cpu_count() or 1, max(1, len(todo)))
    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc="prep", unit="mesh", disable=not cfg.progress)
    last_save = time.monotonic()
    if workers == 1:
        results = (_run_one(s, dataset, cfg.output, cfg) for s in todo)
        pool = None
    else:  # spawn: no fork of a process that may hold OpenMP/torch threads
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=single_threaded)
        futures = [pool.submit(_run_one, s, dataset, cfg.output, cfg) for s in todo]
        results = (f.result() for f in as_completed(futures))
    try:
        for name, entry in results:
            entries[name] = entry
            if entry["status"] != "ok":
                tqdm.write(f"{entry['status']}: {entry['reason']}")
            bar.update(1)
            if time.monotonic() - last_save > 2.0:
                save()
                last_save = time.monotonic()
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        bar.close()
        save()

    for name, entry in entries.items():
        status = entry["status"]
        if status == "ok":
            report.ok.append(name)
        elif status == "rejected":
            report.rejected[name] = entry["reason"]
        else:
            report.failed[name] = entry["reason"]
    report.ok.sort()
    if shard_count == 1:
        ok_keys = [ShapeKey(dataset, *n.split("/", 1)) for n in report.ok]
        train, test = split_keys(ok_keys, cfg.test_fraction, cfg.seed)
        for split_name, keys in (("all", ok_keys), ("train", train), ("test", test)):
            write_json(layout.split(split_name), keys_to_split(keys))
        if ok_keys:
            open_packed(layout.root)  # the fast training format, (re)built when stale
    return report
