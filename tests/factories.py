"""Small on-disk fixtures shared by the tests and the benchmarks (imported as ``tests.factories``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import trimesh

EMPTY_PLY = "ply\nformat ascii 1.0\nelement vertex 0\nend_header\n"


def completed_folder(root: Path, n: int, empty: tuple[str, ...] = (), classes: int = 2, subdivisions: int = 2) -> tuple[Path, Path]:
    """A fake output of ``complete`` for the report: ``n`` sphere meshes ``s000.ply``... of growing
    radius (the ``empty`` names as meshes with no triangles) in ``root/completed``, and a metrics JSON
    in ``eval``'s shape with seeded made-up scores, ``classes`` classes and a retrieval row. Returns
    ``(folder, metrics path)``."""
    folder = root / "completed"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    shapes = {}
    for i in range(n):
        name = f"s{i:03d}"
        if name in empty:
            (folder / f"{name}.ply").write_text(EMPTY_PLY)
        else:
            trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.3 + 0.6 * i / max(n, 1)).export(folder / f"{name}.ply")
        shapes[name] = {"shape": name, "class": "abcdefghij"[i % classes], "chamfer_x1000": float(rng.uniform(1, 10)), "fscore@1%": float(rng.uniform())}
    metrics = root / "metrics.json"
    metrics.write_text(json.dumps({"shapes": shapes, "methods": {"retrieval": {"shapes": {k: {"chamfer_x1000": 5.0} for k in shapes}}}}))
    return folder, metrics


def analytic_sdf_dataset(root: Path, shapes: int, samples: int, seed: int = 0) -> Path:
    """``shapes`` random spheres and boxes, ``samples`` SDF samples each (47/50 near the surface, the
    rest uniform in the cube, as DeepSDF), written in the DeepSDF layout with a train split."""
    from sdf_autodec.geometry.analytic import box_sdf, sphere_sdf
    from sdf_autodec.storage.layout import DatasetLayout, ShapeKey, keys_to_split, write_json, write_sdf_samples

    rng = np.random.default_rng(seed)
    layout = DatasetLayout(root)
    keys = []
    for i in range(shapes):
        key = ShapeKey("bench", "sphere" if i % 2 == 0 else "box", f"s{i:03d}")
        if i % 2 == 0:
            r = rng.uniform(0.3, 0.8)
            sdf = lambda p, r=r: sphere_sdf(p, r)  # noqa: E731
        else:
            h = tuple(rng.uniform(0.15, 0.55, 3))
            sdf = lambda p, h=h: box_sdf(p, h)  # noqa: E731
        uniform = rng.uniform(-1, 1, (samples // 50 * 3, 3))
        seeds = rng.uniform(-1, 1, (samples - len(uniform), 3))
        # near-surface points: project random points onto the surface along the SDF, then jitter
        d = sdf(seeds)
        grad = seeds / np.maximum(np.linalg.norm(seeds, axis=1, keepdims=True), 1e-9)
        near = seeds - d[:, None] * grad + rng.normal(0, 0.01, seeds.shape) * rng.choice([1.0, 0.3], (len(seeds), 1))
        points = np.concatenate([near, uniform]).astype(np.float32)
        write_sdf_samples(layout.sdf(key), points, sdf(points).astype(np.float32))
        keys.append(key)
    write_json(layout.split("train"), keys_to_split(keys))
    return root


def analytic_scan(i: int, rng: np.random.Generator):
    """A sphere or a box (sizes vary with ``i``) seen from a random camera: the visible half of a dense
    surface sample, ``(M, 3)``, with the camera centre: a ``shapes.scans.PartialScan``."""
    from sdf_autodec.shapes.scans import PartialScan

    d = rng.normal(size=(20000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    if i % 2 == 0:
        points = (0.3 + 0.4 * rng.random()) * d
    else:
        half = 0.2 + 0.4 * rng.random(3)
        points = d / np.abs(d / half).max(axis=1, keepdims=True)  # the ray from the centre meets the box here
    camera = rng.normal(size=3)
    camera = 2.5 * camera / np.linalg.norm(camera)
    visible = np.sum(points * (camera - points), axis=1) > 0
    return PartialScan(f"shape_{i}", points[visible], camera)
