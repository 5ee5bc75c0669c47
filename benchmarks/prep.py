"""Benchmark: our preprocessing vs mesh_to_sdf, on the same meshes and sample counts, in one run.

    .venv/bin/python benchmarks/prep.py [--quick] [--meshes N] [--points N] [--pool-repeats R] [--baseline-python PATH]

Meshes: watertight PSB meshes from ../shared/data/meshes/psb (so the true sign of any point is
known), each intact and damaged (holes, duplicated/flipped/double-sided faces, an interior part:
``tests.damage.damage_all``). For each pipeline: seconds per mesh, meshes per second, and the
share of near-surface samples (true distance < 0.1 in the normalised frame) whose sign matches the
intact mesh. Ours also reports the share of samples it dropped as unsure (mesh_to_sdf never drops),
and its time per stage. mesh_to_sdf runs in its own venv (benchmarks/README_mesh_to_sdf.md); its
import time is excluded.

Three throughputs, because the two tools use a machine differently:
- *one process each*: one mesh at a time. Ours lets Open3D use every core inside a query;
  mesh_to_sdf keeps about one core busy (its CPU time is reported too).
- *as shipped* (``meshes_per_s``, the headline): ``sdf-autodec prep`` on all cores, i.e. one
  worker process per core, over the same intact and damaged meshes repeated ``--pool-repeats``
  times, wall clock including starting the workers. mesh_to_sdf has no batch mode; its figure is
  the one-process one.
- *per CPU second*: mesh_to_sdf's CPU seconds per mesh over ours, the ratio with no parallelism in it.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import SHARED, finish, require, setup  # noqa: E402

from data_prep.crawl import MeshSource  # noqa: E402
from tests.damage import damage_all  # noqa: E402  (a test fixture, shared with the tests)
from data_prep.mesh_io import load_mesh  # noqa: E402
from data_prep.prep import PrepConfig, prep_dataset, prep_mesh  # noqa: E402
from data_prep.raycast import raycasting_scene, signed_distance  # noqa: E402
from data_prep.sampling import SampleConfig  # noqa: E402
from sdf_autodec.storage.layout import DatasetLayout, ShapeKey, read_normalization, read_sdf_samples  # noqa: E402
from sdf_autodec.geometry.normalize import deepsdf_normalization  # noqa: E402

PSB = SHARED / "meshes" / "psb"
NEAR = 0.1


def pick_meshes(count: int) -> list[Path]:
    classes = sorted(p for p in PSB.iterdir() if p.is_dir())
    per_class = [sorted(c.glob("*.off")) for c in classes]
    chosen = []
    for i in range(count):
        chosen.append(per_class[i % len(per_class)][i // len(per_class)])
    return chosen


def truth_and_near(intact_source: trimesh.Trimesh, points_source: np.ndarray, norm) -> tuple[np.ndarray, np.ndarray]:
    """True inside flags and the near-surface mask (normalised-frame distance < NEAR) of source-frame points."""
    sdf = signed_distance(raycasting_scene(trimesh.Trimesh(norm.apply(intact_source.vertices), intact_source.faces)), norm.apply(points_source), 7)
    return sdf < 0, np.abs(sdf) < NEAR


def run_ours(path: Path, workdir: Path, points: int) -> tuple[np.ndarray, np.ndarray, float, float, dict, dict]:
    cfg = PrepConfig(input=str(path.parent), output=str(workdir), samples=SampleConfig(num_samples=points), workers=1, progress=False)
    source = MeshSource("bench", path.stem, path)
    t0, c0 = time.perf_counter(), time.process_time()
    entry = prep_mesh(source, "bench", str(workdir), cfg)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if entry["status"] != "ok":
        raise RuntimeError(f"our pipeline did not finish {path}: {entry['reason']}")
    layout, key = DatasetLayout(workdir), ShapeKey("bench", "bench", path.stem)
    pos, neg = read_sdf_samples(layout.sdf(key))
    rows = np.concatenate([pos, neg])
    norm = read_normalization(layout.normalization(key))
    return norm.invert(rows[:, :3]), rows[:, 3] < 0, seconds, cpu, entry["timings_s"], entry["qa"]


def run_mesh_to_sdf(python: str, path: Path, points: int, out: Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    cmd = [python, str(REPO / "benchmarks" / "mesh_to_sdf_baseline.py"), "--mesh", str(path), "--points", str(points), "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={"PYOPENGL_PLATFORM": "osmesa", "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        raise RuntimeError(f"mesh_to_sdf failed on {path}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    with np.load(out) as z:
        source_points = z["points"].astype(np.float64) * float(z["scale"]) + z["center"]
        return source_points, z["sdf"] < 0, float(z["seconds_total"]), float(z["cpu_seconds_total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 meshes, 50k points, pool run once: the same figures on less work (mesh_to_sdf too where its venv exists, about 40 s more)")
    parser.add_argument("--meshes", type=int, default=6)
    parser.add_argument("--points", type=int, default=250_000)
    parser.add_argument("--pool-repeats", type=int, default=4, help="the all-cores run prepares every mesh this many times (pool start-up amortised as on a real dataset)")
    parser.add_argument("--baseline-python", default=str(REPO / ".venv-bench" / "bin" / "python"))
    args = parser.parse_args()
    if args.quick:
        args.meshes, args.points, args.pool_repeats = 2, 50_000, 1
    require("prep", PSB, why="the PSB meshes of ../shared/data")
    setup()
    baseline = Path(args.baseline_python).is_file()
    if not baseline:
        print(f"mesh_to_sdf: not measured ({args.baseline_python} missing; see benchmarks/README_mesh_to_sdf.md)")

    rows, stage_sums, pool_inputs = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for path in pick_meshes(args.meshes):
            intact = load_mesh(path)
            norm = deepsdf_normalization(intact.vertices)
            damaged_path = tmp / "damaged" / f"{path.parent.name}_{path.stem}.ply"
            damaged_path.parent.mkdir(exist_ok=True)
            damage_all(intact, np.random.default_rng(1)).export(damaged_path)
            for variant, mesh_path in (("intact", path), ("damaged", damaged_path)):
                row = {"mesh": f"{path.parent.name}/{path.name}", "variant": variant, "faces": len(intact.faces)}
                pool_inputs.append(mesh_path)
                pts, inside, seconds, cpu, stages, qa = run_ours(mesh_path, tmp / f"ours_{variant}_{path.parent.name}_{path.stem}", args.points)
                truth, near = truth_and_near(intact, pts, norm)
                row.update(ours_s=seconds, ours_cpu=cpu, ours_acc=float((inside == truth)[near].mean()), ours_dropped=qa["dropped_fraction"], method=qa["sign_method"])
                for k, v in stages.items():
                    stage_sums.setdefault(k, []).append(v)
                if baseline:
                    pts, inside, seconds, cpu = run_mesh_to_sdf(args.baseline_python, mesh_path, args.points, tmp / "m2s.npz")
                    truth, near = truth_and_near(intact, pts, norm)
                    row.update(m2s_s=seconds, m2s_cpu=cpu, m2s_acc=float((inside == truth)[near].mean()))
                rows.append(row)
                print(
                    f"{row['mesh']:<18} {variant:<8} ours {row['ours_s']:6.2f} s, sign acc {row['ours_acc']:.5f} "
                    f"(dropped {row['ours_dropped']:.4f}, {row['method']})"
                    + (f" | mesh_to_sdf {row['m2s_s']:6.2f} s, sign acc {row['m2s_acc']:.5f}" if baseline else ""),
                    flush=True,
                )
        # as shipped: one worker per core over the same intact and damaged meshes, repeated
        src = tmp / "pool_src"
        src.mkdir()
        for repeat in range(args.pool_repeats):
            for i, mesh_path in enumerate(pool_inputs):
                (src / f"r{repeat}_{i}_{mesh_path.stem}{mesh_path.suffix}").symlink_to(mesh_path.resolve())
        pool_count = args.pool_repeats * len(pool_inputs)
        workers = min(os.cpu_count() or 1, pool_count)
        t0 = time.perf_counter()
        prep_dataset(PrepConfig(input=str(src), output=str(tmp / "pool_out"), samples=SampleConfig(num_samples=args.points), progress=False))
        pool_mps = pool_count / (time.perf_counter() - t0)
        shapes = json.loads((tmp / "pool_out" / "manifest.json").read_text())["shapes"].values()
        in_worker = [sum(e["timings_s"].values()) for e in shapes if e["status"] == "ok"]
        steady_mps = workers / float(np.mean(in_worker))  # every worker always busy: no start-up, no tail

    def mean(key, variant=None):
        vals = [r[key] for r in rows if key in r and (variant is None or r["variant"] == variant)]
        return float(np.mean(vals)) if vals else None

    ours_mps = 1.0 / mean("ours_s")
    m2s_mps = 1.0 / mean("m2s_s") if baseline else None
    print("\nour time per mesh by stage (s, mean, one process):", ", ".join(f"{k} {np.mean(v):.3f}" for k, v in stage_sums.items()))
    print(f"ours, one process: {ours_mps:.3f} meshes/s, {mean('ours_cpu'):.3f} CPU s per mesh ({mean('ours_cpu') / mean('ours_s'):.2f} cores busy)")
    print(f"ours, as shipped ({workers} workers, {pool_count} meshes, start-up included): {pool_mps:.3f} meshes/s; "
          f"steady state from the workers' own times: {steady_mps:.3f} meshes/s")
    if baseline:
        print(f"mesh_to_sdf, one process: {m2s_mps:.4f} meshes/s, {mean('m2s_cpu'):.2f} CPU s per mesh ({mean('m2s_cpu') / mean('m2s_s'):.2f} cores busy)")
        print(f"speedup: as shipped {pool_mps / m2s_mps:.1f}x, one process each {ours_mps / m2s_mps:.1f}x, "
              f"per CPU second {mean('m2s_cpu') / mean('ours_cpu'):.1f}x")
    result = {
        "meshes": args.meshes,
        "points": args.points,
        "meshes_per_s": pool_mps,
        "meshes_per_s_steady_state": steady_mps,
        "meshes_per_s_one_process": ours_mps,
        "workers": workers,
        "pool_meshes": pool_count,
        "mesh_to_sdf_meshes_per_s": m2s_mps,
        "speedup_vs_mesh_to_sdf": (pool_mps / m2s_mps) if baseline else None,
        "speedup_one_process": (ours_mps / m2s_mps) if baseline else None,
        "cpu_s_per_mesh": mean("ours_cpu"),
        "mesh_to_sdf_cpu_s_per_mesh": mean("m2s_cpu"),
        "speedup_per_cpu_second": (mean("m2s_cpu") / mean("ours_cpu")) if baseline else None,
        "sign_accuracy_intact": mean("ours_acc", "intact"),
        "sign_accuracy_damaged": mean("ours_acc", "damaged"),
        "dropped_fraction_damaged": mean("ours_dropped", "damaged"),
        "mesh_to_sdf_sign_accuracy_intact": mean("m2s_acc", "intact"),
        "mesh_to_sdf_sign_accuracy_damaged": mean("m2s_acc", "damaged"),
        "seconds_per_stage": {k: float(np.mean(v)) for k, v in stage_sums.items()},
    }
    finish(result)


if __name__ == "__main__":
    main()
