"""Completion of real depth scans: the 20 ShapeNet tables of ../shared/data/scans/dvr_tables, from
one view and from three, scored against their full ground-truth clouds.

    .venv/bin/python benchmarks/dvr_tables.py [--quick] [--work DIR] [--epochs N] [--procedural N] [--infomr]
        [--sets "1 view;3 views;1 view, symmetry;..."] [--orientation gravity] [--adapt STEPS] [--free-space K] [--background K] [--out results/dvr_tables]

What it does (every stage resumes from what ``--work`` already holds):

1. Training meshes: the 20 PSB tables (../shared/data/meshes/psb/Table), turned upright (``data_prep.pose.upright_table``:
   the dominant direction of the face normals is "up", the top on the side where that area lies; the
   longest horizontal side along z, as in ShapeNet's tables), plus ``--procedural`` generated tables
   (``data_prep.procedural``, turned so that their long side runs along z too) and, with ``--infomr``,
   the 101 real tables of ../shared/data/meshes/infomr (arbitrary pose, uprighted the same way).
2. ``prep`` with ``normalization=unit_cube``: the training shapes live in the DVR/ONet frame (bounding
   box centred, longest side 1), so the DVR scans and ground truth need no transform at all.
3. ``train`` ``recipe=completion`` (conf/recipe/completion.yaml: the small decoder with a 64-dimensional code).
4. ``dvr``: views [0] and [0, 8, 16] of each table → scan npz files (points + the camera of each).
5. ``complete`` both scan sets (free space from the cameras, batched fitting; with ``--adapt``, then
   a copy of the decoder tuned to each scan, ``core.adaptation``) and mesh over ``[-0.55, 0.55]^3``.
6. ``eval`` against ``pointcloud.npz`` (100k points, 30k used) with the scans given, so the errors are
   also split between the observed and unobserved parts of each table; metrics in DeepSDF's
   unit-sphere frame of each ground truth (protocol: docs/metrics.md). Beside ours, the references
   (``shapes/references.py``): the mean shape, the retrieved training table, the oracle nearest
   training table and the scan itself.

The last line is JSON: ``chamfer_median_1view``, ``chamfer_median_3view``,
``retrieval_chamfer_median_1view`` (and the other references' and F@1%'s), then per set the medians,
means, references and whether ours beats each; ``--out`` stores it with the CSVs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import SHARED, finish, prep_and_train, quick_run, require, setup  # noqa: E402
from data_prep.dvr import DvrScanConfig, export_dvr_scans  # noqa: E402
from data_prep.mesh_io import load_mesh  # noqa: E402
from data_prep.pose import upright_table  # noqa: E402
from data_prep.procedural import make_shape  # noqa: E402
from sdf_autodec.core.adaptation import AdaptConfig  # noqa: E402
from sdf_autodec.core.fitting import FitConfig  # noqa: E402
from sdf_autodec.shapes.complete import CompleteConfig, complete  # noqa: E402
from sdf_autodec.shapes.mesh import MeshConfig  # noqa: E402
from sdf_autodec.shapes.evaluate import EvalConfig, evaluate  # noqa: E402
from sdf_autodec.shapes.observations import ObservationConfig  # noqa: E402
from sdf_autodec.shapes.pictures import mesh_sheet  # noqa: E402

PSB_TABLES = SHARED / "meshes" / "psb" / "Table"
DVR = SHARED / "scans" / "dvr_tables"
INFOMR_TABLES = ("RectangleTable", "RoundTable")
VIEW_SETS = {
    "1 view": ([0], True, "none"),
    "3 views": ([0, 8, 16], True, "none"),
    "1 view no camera": ([0], False, "none"),
    "1 view, symmetry": ([0], True, "canonical"),
    "3 views, symmetry": ([0, 8, 16], True, "canonical"),
    "1 view no camera, symmetry": ([0], False, "canonical"),
}
"""Scan sets by label: (views, camera kept, symmetry). "no camera" keeps only the points of the
one-view scans (a raw cloud: normals estimated with ``--orientation``, no free space), to measure
completion of camera-less clouds against the same truth. "symmetry": the observations mirrored
across the canonical plane (``ObservationConfig.symmetry``)."""
TAGS = {"1 view": "1view", "3 views": "3view"}
"""Short names of the sets in the JSON line (``chamfer_median_1view``...): the first two."""


def training_meshes(folder: Path, procedural: int, infomr: bool = False) -> None:
    """The training tables as meshes in ``folder``: the 20 PSB tables uprighted, ``procedural``
    generated ones and, with ``infomr``, the 101 real tables of ``meshes/infomr`` (RectangleTable,
    RoundTable; arbitrary pose) uprighted the same way. Existing files are kept (a resumed run)."""
    folder.mkdir(parents=True, exist_ok=True)
    if infomr:
        for cls in INFOMR_TABLES:
            for path in sorted((SHARED / "meshes" / "infomr" / cls).glob("*.obj")):
                out = folder / f"infomr_{path.stem}.ply"
                if not out.exists():
                    upright_table(load_mesh(path)).export(out)
    for path in sorted(PSB_TABLES.glob("*.off")):
        out = folder / f"psb_{path.stem}.ply"
        if not out.exists():
            upright_table(load_mesh(path)).export(out)
    quarter_turn = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 1, 0])
    for i in range(procedural):
        out = folder / f"procedural_{i:03d}.ply"
        if not out.exists():
            mesh = make_shape("table", np.random.default_rng([7, i]))
            extent = mesh.bounds[1] - mesh.bounds[0]
            if extent[0] > extent[2]:  # the generator puts the long side along x
                mesh.apply_transform(quarter_turn)
            mesh.export(out)


def upright_sheet(folder: Path, out: Path) -> None:
    """A contact sheet of the real (not generated) training tables as ``upright_table`` left them, y up."""
    paths = sorted(p for p in folder.glob("*.ply") if not p.stem.startswith("procedural_"))
    mesh_sheet(paths, out)
    print(f"upright sheet: {len(paths)} real tables in {out}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 6 procedural tables, 30 epochs, 4 scans, 50 fitting steps")
    parser.add_argument("--work", default=str(REPO / "runs" / "dvr_tables"), help="working folder (meshes, data, run, completions)")
    parser.add_argument("--epochs", type=int, default=600)
    parser.add_argument("--width", type=int, default=128, help="the decoder's width (benchmarks.harness.completion_training)")
    parser.add_argument("--procedural", type=int, default=60, help="generated tables added to the 20 PSB tables")
    parser.add_argument("--infomr", action="store_true", help="also train on the 101 real tables of meshes/infomr (uprighted by the same heuristic)")
    parser.add_argument("--upright-sheet", default="", help="PNG: every real training table as uprighted, to check the heuristic by eye")
    parser.add_argument("--iterations", type=int, default=400, help="latent fitting steps per scan")
    parser.add_argument("--out", default="", help="folder for the stored summary and CSVs (e.g. results/dvr_tables)")
    parser.add_argument("--sets", default="1 view;3 views", help=f"scan sets to complete and score (';'-separated, of: {'; '.join(VIEW_SETS)})")
    parser.add_argument("--orientation", default="gravity", help="normals of camera-less scans: gravity, viewpoint or centroid (shapes.scans.estimate_normals)")
    parser.add_argument("--hypotheses", action="store_true", help="camera-less scans: also fit every one with its normals flipped, keep the lower data loss")
    parser.add_argument("--adapt", type=int, default=0, help="decoder adaptation steps per scan after the fit (CompleteConfig.adapt; 0: none)")
    parser.add_argument("--adapt-lr", type=float, default=AdaptConfig.lr, help="learning rate of the adaptation")
    parser.add_argument("--adapt-anchor", type=float, default=AdaptConfig.anchor_weight, help="anchor weight of the adaptation")
    parser.add_argument("--free-space", type=float, default=ObservationConfig.free_space_per_point, help="free-space samples per surface point (observe.free_space_per_point)")
    parser.add_argument("--background", type=float, default=ObservationConfig.background_per_point, help="samples on the rays that hit nothing per surface point (observe.background_per_point)")
    parser.add_argument("--iou-points", type=int, default=0, help="uniform points of the IoU estimate (0: no IoU; it is an estimate on unoriented DVR clouds)")
    args = parser.parse_args()
    require("dvr_tables", PSB_TABLES, DVR, why="the shared data")
    setup()
    work = quick_run(args, "dvr_tables_quick", epochs=30, procedural=6, iterations=50)
    seconds = {}

    t0 = time.perf_counter()
    training_meshes(work / "meshes" / "table", args.procedural, args.infomr)
    if args.upright_sheet:
        upright_sheet(work / "meshes" / "table", Path(args.upright_sheet))
    report, trained = prep_and_train(work, "tables", args.epochs, args.width, args.quick, seconds, since=t0)

    objects = sorted(p.name for p in DVR.iterdir() if (p / "cameras.npz").is_file())[: 4 if args.quick else None]
    results = {}
    sets = [label.strip() for label in args.sets.split(";") if label.strip()]
    unknown = [label for label in sets if label not in VIEW_SETS]
    if unknown:
        sys.exit(f"benchmarks/dvr_tables.py: unknown --sets {unknown}; choose from {list(VIEW_SETS)}")
    for label in sets:
        views, camera, symmetry = VIEW_SETS[label]
        tag = f"{len(views)}view" + ("" if camera else "_nocamera")
        run_tag = tag + ("_symmetry" if symmetry != "none" else "") + ("_adapt" if args.adapt else "") + (f"_fs{args.free_space:g}" if args.free_space != 1 else "") + (f"_bg{args.background:g}" if args.background else "")
        t0 = time.perf_counter()
        scans, with_camera = work / "scans" / tag, work / "scans" / f"{len(views)}view"
        export_dvr_scans(DvrScanConfig(input=str(DVR), output=str(with_camera), views=views))
        if not camera:  # the same scans, points only
            scans.mkdir(parents=True, exist_ok=True)
            for src in sorted(with_camera.glob("*.npz")):
                with np.load(src) as z:
                    np.savez(scans / src.name, points=z["points"])
        for extra in sorted(scans.glob("*.npz")):
            if extra.stem not in objects:
                extra.unlink()
        out = work / "completed" / run_tag
        done = complete(
            CompleteConfig(
                run=str(work / "run"), input=str(scans), output=str(out), batch_size=20, orientation_hypotheses=args.hypotheses,
                fit=FitConfig(iterations=args.iterations, restarts=1),
                adapt=AdaptConfig(iterations=args.adapt, lr=args.adapt_lr, anchor_weight=args.adapt_anchor),
                observe=ObservationConfig(num_surface=2000, orient_normals=args.orientation, symmetry=symmetry,
                                          free_space_per_point=args.free_space, background_per_point=args.background),
                mesh=MeshConfig(resolution=96 if args.quick else 160, half_size=0.55), progress=False,
            )
        )
        seconds[f"complete_{run_tag}"] = time.perf_counter() - t0
        tag = run_tag
        metrics = evaluate(EvalConfig(pred=str(out), gt=str(DVR), output=str(work / f"metrics_{tag}.json"), scans=str(scans), iou_points=args.iou_points, progress=False))
        rows = dict(metrics["shapes"])
        for name in objects:
            entry = done["scans"].get(name, {"status": "missing"})
            if entry["status"] != "ok":
                rows[name] = {"status": entry["status"], "reason": entry.get("reason", "")}
        references = {m: {"median": e["median"], "mean": e["mean"], "count": e["count"]} for m, e in metrics.get("methods", {}).items() if m != "ours"}
        results[label] = {
            "views": views, "camera": camera, "symmetry": symmetry, "adapt": args.adapt, "completed": metrics["count"], "of": len(objects),
            "mean": metrics["mean"], "median": metrics["median"], "references": references, "comparison": metrics.get("comparison", {}),
            "shapes": rows, "csv": metrics.get("csv"),
        }  # fmt: skip
        print(f"\n{label} (views {views}): {metrics['count']}/{len(objects)} completed in {seconds[f'complete_{tag}']:.0f} s; metrics: {work / f'metrics_{tag}.json'}")
        columns = ["chamfer_x1000", "fscore@1%", "fscore@2%", "normal_consistency", "iou", "mesh_accuracy", "mesh_completion", "observed.completion", "unobserved.completion"]
        print(f"{'table':<34} " + " ".join(f"{c.replace('_completion', '_cmpl').replace('mesh_', ''):>12}" for c in columns))
        for name in sorted(rows):
            r = rows[name]
            if "chamfer" in r:
                print(f"{name:<34} " + " ".join(f"{r.get(c, float('nan')):12.4f}" for c in columns))
            else:
                print(f"{name:<34} {r['status']}: {r.get('reason', '')}")
        for what in ("mean", "median"):
            agg = metrics[what]
            print(f"{what:<34} " + " ".join(f"{agg.get(c, float('nan')):12.4f}" for c in columns))
        for m, e in references.items():
            if e["count"]:
                print(f"{m + ' (median)':<34} " + " ".join(f"{e['median'].get(c, float('nan')):12.4f}" for c in columns))
        print("ours against the references (median): " + "; ".join(f"{k.replace('_', ' ')}: " + ", ".join(f"{n} {'yes' if v else 'NO'}" for n, v in verdict.items()) for k, verdict in metrics.get("comparison", {}).items()))
    headline = {}
    for label, tag in TAGS.items():
        if label in results:
            r = results[label]
            headline[f"chamfer_median_{tag}"] = r["median"].get("chamfer")
            headline[f"fscore1_median_{tag}"] = r["median"].get("fscore@1%")
            for m, e in r["references"].items():
                if e["count"]:
                    headline[f"{m}_chamfer_median_{tag}"] = e["median"].get("chamfer")
                    headline[f"{m}_fscore1_median_{tag}"] = e["median"].get("fscore@1%")
    adapt = {"adapt": {"iterations": args.adapt, "lr": args.adapt_lr, "anchor_weight": args.adapt_anchor}} if args.adapt else {}
    observe = {"free_space_per_point": args.free_space, "background_per_point": args.background}
    summary = {**headline, **adapt, "observe": observe, "model_frame": "DVR (unit cube)", "metrics_frame": "unit sphere (DeepSDF)", "training_shapes": len(trained.ids), "epochs": args.epochs, "seconds": seconds}
    if args.out:
        out_dir = Path(args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        for label in results:
            src = Path(results[label]["csv"])
            if src.is_file():
                (out_dir / src.name).write_bytes(src.read_bytes())
    figures = {**summary, "results": {k: {kk: v[kk] for kk in ("median", "mean", "references", "comparison")} for k, v in results.items()}}
    finish(figures, Path(args.out) / "dvr_tables.json" if args.out else "", stored={**summary, "results": results})


if __name__ == "__main__":
    main()
