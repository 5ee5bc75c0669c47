"""Benchmark: the headless renderer on one core, and the HTML report of many shapes.

    .venv/bin/python benchmarks/render.py [--quick] [--shapes 500] [--out results/render]

1. ``render`` of a 100k-face mesh (a subdivided sphere with a bumpy radius, so that its normals vary)
   at 256² on **one core** (the process is pinned to one CPU before Open3D starts its threads):
   median of 7 timed runs after a warm-up, split into the ray cast and the rest; also the scan
   splats (30k points) and a mesh coloured by its distance to 30k ground-truth points.
2. ``report`` of ``--shapes`` completed shapes (small spheres of random sizes with made-up metrics:
   the report's own cost, not a model's) against the tiny run the benchmark trains in seconds: build
   time and page size at the default caps (1000 thumbnails, 12 full pictures).

Prints the figures; the last line is JSON (``render_100k_256_s``, ``report_<N>_s``, ``report_<N>_mb``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import finish  # noqa: E402

if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, before any thread pool starts
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import trimesh  # noqa: E402

from sdf_autodec.shapes.render import Camera, Framing, Mesh, Points, render  # noqa: E402


def bumpy_sphere(faces: int) -> trimesh.Trimesh:
    """A UV sphere of at least ``faces`` triangles with a bumpy radius."""
    n = int(np.ceil(np.sqrt(faces / 4))) + 1  # uv_sphere(count=[n, n]) has about 4 n² faces
    s = trimesh.creation.uv_sphere(count=[n, n])
    v = s.vertices * (1 + 0.05 * np.sin(7 * s.vertices[:, :1]) * np.cos(5 * s.vertices[:, 1:2]))
    return trimesh.Trimesh(v, s.faces, process=False)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (Embree's first scene, matplotlib's colour maps)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_render(repeats: int) -> dict:
    mesh = bumpy_sphere(100_000)
    cam = Camera.orbit(Framing.of(mesh.vertices), 30, 20)
    rng = np.random.default_rng(0)
    gt, _ = trimesh.sample.sample_surface(mesh, 30_000, seed=0)
    scan = gt[gt[:, 2] > 0]
    item = Mesh(mesh.vertices, mesh.faces)
    out = {"faces": int(len(mesh.faces)), "size": 256}
    out["render_100k_256_s"] = timed(lambda: render([item], cam, 256), repeats)
    out["render_100k_512_s"] = timed(lambda: render([item], cam, 512), max(3, repeats // 2))
    out["render_100k_256_distance_coloured_s"] = timed(lambda: render([Mesh(mesh.vertices, mesh.faces, distance_to=gt + rng.normal(0, 0.01, gt.shape))], cam, 256), repeats)
    out["render_points_30k_256_s"] = timed(lambda: render([Points(gt)], cam, 256), repeats)
    out["render_mesh_and_scan_256_s"] = timed(lambda: render([item, Points(scan)], cam, 256), repeats)
    return out


def bench_report(shapes: int, work: Path) -> dict:
    from sdf_autodec.nn.mlp import DecoderConfig
    from sdf_autodec.shapes.report import ReportConfig, build_report
    from sdf_autodec.shapes.train import TrainConfig, train
    from tests.conftest import tiny_train_config  # the tests' factories: a tiny run, fake completions
    from tests.factories import completed_folder
    from data_prep.prep import PrepConfig, prep_dataset
    from data_prep.sampling import SampleConfig

    meshes = work / "meshes" / "thing"
    meshes.mkdir(parents=True)
    for i in range(3):
        trimesh.creation.icosphere(subdivisions=2, radius=0.5 + 0.1 * i).export(meshes / f"m{i}.ply")
    data = work / "data"
    prep_dataset(PrepConfig(input=str(work / "meshes"), output=str(data), samples=SampleConfig(num_samples=2000, surface_points=1000), workers=1, progress=False))
    cfg: TrainConfig = tiny_train_config(data, work / "run", model=DecoderConfig(latent_size=8, depth=3, width=32, skip_layers=[2], dropout=0.0))
    train(cfg)
    completed, metrics = completed_folder(work, shapes, classes=5, subdivisions=3)
    result = build_report(ReportConfig(run=str(work / "run"), completed=str(completed), eval=str(metrics), output=str(work / "report.html")))
    return {f"report_{shapes}_s": result["seconds"], f"report_{shapes}_mb": round(result["bytes"] / 1e6, 2), "report_shapes": shapes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats and a 50-shape report")
    parser.add_argument("--shapes", type=int, default=500)
    parser.add_argument("--out", default="", help="folder for render.json")
    args = parser.parse_args()
    shapes = 50 if args.quick else args.shapes
    figures = bench_render(3 if args.quick else 7)
    print(f"[render] one core, {figures['faces']} faces: 256² {figures['render_100k_256_s'] * 1e3:.0f} ms, 512² {figures['render_100k_512_s'] * 1e3:.0f} ms, "
          f"distance-coloured 256² {figures['render_100k_256_distance_coloured_s'] * 1e3:.0f} ms; 30k splats {figures['render_points_30k_256_s'] * 1e3:.0f} ms; "
          f"mesh + scan {figures['render_mesh_and_scan_256_s'] * 1e3:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        figures.update(bench_report(shapes, Path(tmp)))
    print(f"[render] report of {shapes} shapes: {figures[f'report_{shapes}_s']:.1f} s, {figures[f'report_{shapes}_mb']:.2f} MB")
    stored = {"command": "benchmarks/render.py" + (" --quick" if args.quick else f" --shapes {shapes}"), **figures}
    finish({k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}, Path(args.out) / "render.json" if args.out else "", stored=stored)


if __name__ == "__main__":
    main()
