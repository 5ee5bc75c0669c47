"""Benchmark: which side of the surface the estimated normals of a camera-less scan call outside.

    .venv/bin/python benchmarks/orientation.py [--view 0] [--points 20000] [--out results/orientation]

For each of the 20 real ShapeNet tables of ../shared/data/scans/dvr_tables, the points of one view
are taken without their camera and their normals estimated by each orientation of
``shapes.scans.estimate_normals`` (``gravity``, ``viewpoint``, ``centroid``). A normal is right when
it faces the true camera (the visible side of a surface is its outside). Prints, per scan and
orientation, the share of right normals, and the number of scans whose normals are mostly right;
the last line is JSON (``scans_right_<orientation>``, ``mean_share_right_<orientation>``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import SHARED, finish, require  # noqa: E402

from data_prep.dvr import load_dvr_view  # noqa: E402
from sdf_autodec.shapes.scans import estimate_normals  # noqa: E402

DVR = SHARED / "scans" / "dvr_tables"
ORIENTATIONS = ("gravity", "viewpoint", "centroid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--view", type=int, default=0)
    parser.add_argument("--points", type=int, default=20_000, help="points per scan (a seeded subset)")
    parser.add_argument("--out", default="", help="folder for orientation.json (default: print only)")
    args = parser.parse_args()
    require("orientation", DVR)
    rows, seconds = {}, {o: 0.0 for o in ORIENTATIONS}
    print(f"{'table':<34} " + " ".join(f"{o:>10}" for o in ORIENTATIONS) + "   camera height over the centroid")
    for folder in sorted(p for p in DVR.iterdir() if (p / "cameras.npz").is_file()):
        scan = load_dvr_view(folder, args.view)
        points = scan.points.astype(np.float64)
        points = points[np.random.default_rng(0).choice(len(points), min(len(points), args.points), replace=False)]
        towards_camera = scan.camera.origin - points
        row = {"camera_height_over_centroid": float(scan.camera.origin[1] - points[:, 1].mean())}
        for o in ORIENTATIONS:
            t0 = time.perf_counter()
            normals = estimate_normals(points, 30, o)
            seconds[o] += time.perf_counter() - t0
            row[o] = float((np.sum(normals * towards_camera, axis=1) > 0).mean())
        rows[folder.name] = row
        print(f"{folder.name:<34} " + " ".join(f"{row[o]:10.2f}" for o in ORIENTATIONS) + f"   {row['camera_height_over_centroid']:+.2f}")
    result = {"view": args.view, "scans": len(rows)}
    for o in ORIENTATIONS:
        result[f"scans_right_{o}"] = sum(1 for r in rows.values() if r[o] > 0.5)
        result[f"mean_share_right_{o}"] = float(np.mean([r[o] for r in rows.values()]))
        result[f"seconds_per_scan_{o}"] = seconds[o] / len(rows)
    print("scans mostly right: " + ", ".join(f"{o} {result[f'scans_right_{o}']}/{len(rows)}" for o in ORIENTATIONS))
    finish(result, Path(args.out) / "orientation.json" if args.out else "", stored={"result": result, "scans": rows})


if __name__ == "__main__":
    main()
