"""Benchmark: mesh extraction, dense vs coarse-to-fine, in one run.

    .venv/bin/python benchmarks/extract.py [--quick] [--run RUN_DIR] [--shapes N]

For N training shapes of a trained run (default: the demo's, ``demo_out/run``), at resolutions
128, 256 and 512 (--quick: 128 and 256, one shape): decoder queries and wall seconds of each
method, and the Chamfer distance (DeepSDF convention, on the mesh vertices) between the two meshes.
Dense extraction at 512 takes minutes per shape on a CPU; it runs only without --quick. The last
line is JSON with ``query_ratio_256``, ``time_ratio_256`` and ``chamfer_diff_256``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import finish, setup  # noqa: E402

from sdf_autodec.shapes.mesh import EmptyLevelSet, MeshConfig, grid_values, marching_cubes_mesh  # noqa: E402
from sdf_autodec.shapes.metrics import point_metrics  # noqa: E402
from sdf_autodec.shapes.train import load_trained  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--run", default=str(REPO / "demo_out" / "run"), help="a trained run (sdf-autodec demo writes demo_out/run)")
    parser.add_argument("--shapes", type=int, default=3)
    args = parser.parse_args()
    resolutions = (128, 256) if args.quick else (128, 256, 512)
    shapes = 1 if args.quick else args.shapes
    setup()
    if not Path(args.run).exists():
        sys.exit(f"benchmarks/extract.py: {args.run} not found; run `sdf-autodec demo` first or pass --run")
    model = load_trained(args.run, "cpu")
    per_res: dict[int, list[dict]] = {r: [] for r in resolutions}
    for index in range(min(shapes, len(model.ids))):
        code = model.latents[index]
        for r in resolutions:
            row = {}
            meshes = {}
            for method in ("coarse_to_fine", "dense"):
                t0 = time.perf_counter()
                grid = grid_values(model.decoder, code, MeshConfig(resolution=r, method=method))
                try:
                    meshes[method] = marching_cubes_mesh(grid.values)
                except EmptyLevelSet:
                    meshes[method] = None
                row[method] = {"queries": grid.queries, "seconds": time.perf_counter() - t0}
                del grid
            a, b = meshes["coarse_to_fine"], meshes["dense"]
            row["chamfer_diff"] = 0.0 if a is None and b is None else (float("inf") if a is None or b is None else point_metrics(a.vertices, b.vertices, scale=2.0)["chamfer"])
            row["faces"] = None if b is None else len(b.faces)
            per_res[r].append(row)
            print(
                f"{model.ids[index]:<12} {r:>4}^3: dense {row['dense']['queries']:>10} queries {row['dense']['seconds']:7.2f} s | "
                f"coarse-to-fine {row['coarse_to_fine']['queries']:>9} queries {row['coarse_to_fine']['seconds']:6.2f} s | "
                f"ratio {row['dense']['queries'] / row['coarse_to_fine']['queries']:5.1f}x queries, "
                f"{row['dense']['seconds'] / row['coarse_to_fine']['seconds']:4.1f}x time | chamfer diff {row['chamfer_diff']:.2e}",
                flush=True,
            )
    result = {"run": args.run, "shapes": shapes}
    for r, rows in per_res.items():
        result[f"query_ratio_{r}"] = float(np.mean([x["dense"]["queries"] / x["coarse_to_fine"]["queries"] for x in rows]))
        result[f"time_ratio_{r}"] = float(np.mean([x["dense"]["seconds"] / x["coarse_to_fine"]["seconds"] for x in rows]))
        result[f"chamfer_diff_{r}"] = float(np.max([x["chamfer_diff"] for x in rows]))
    finish(result)


if __name__ == "__main__":
    main()
