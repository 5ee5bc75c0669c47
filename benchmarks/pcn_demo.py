"""Completion of raw partial point clouds with no camera: the four PCN demo clouds in
../shared/data/scans/pcn_demo (airplane, car, chair, lamp; no ground truth).

    .venv/bin/python benchmarks/pcn_demo.py [--quick] [--work DIR] [--epochs N] [--per-family N] [--real N] [--adapt STEPS] [--out DIR]

1. Training shapes: procedural chairs, tables, lamps and shelves (``data_prep.procedural``), turned
   into the PCN clouds' frame (y up, the front toward +x: ``TO_PCN``), prepped with
   ``normalization=unit_cube``: the PCN clouds are already in a normalised ShapeNet frame of about
   ``[-0.5, 0.5]^3``, so they enter the model as they are. With ``--real N``, up to N real meshes
   from each source of ``REAL`` join them: the ShapeNetCore.v2 chairs and airplanes (canonical:
   turned by ``V2_TO_PCN``), the PSB chairs and airplanes and the InfoMR chairs, jets, cars and
   floor lamps (arbitrary pose: turned by ``data_prep.pose``; a contact sheet of each class as posed,
   ``posed_<class>.png``, is stored with ``--out``). Without ``--real`` there is no airplane or car
   among the training shapes: those two completions can only borrow from the other classes.
2. ``train`` the small decoder with a 64-dimensional code.
3. ``complete`` the clouds: no camera, so normals are estimated with Open3D and turned towards a
   viewpoint found above the cloud's floor (``observe.orient_normals=gravity``, the default), and the
   observations are the points and ±η along those normals.
   With ``--adapt``, a copy of the decoder is then tuned to each cloud (``core.adaptation``); both
   completions are kept (``completed/`` and ``completed_adapt/``) and rendered side by side.
4. Report, per cloud (there is no ground truth): the fitted loss, and how far the observed points
   lie from the completed mesh (median and 90th percentile, DVR-frame units) — a check that the
   completion explains what was seen, not a measure of what it invented.

Meshes are written to ``WORK/completed/<name>.ply``; pictures (``render``: cloud | completion, three
views) to ``WORK/pictures/`` and, with ``--out``, copied there with the JSON. The last line is JSON.
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
from data_prep.mesh_io import load_mesh  # noqa: E402
from data_prep.pose import PROCEDURAL_TO_POSE, SHAPENET_V2_TO_POSE, pose  # noqa: E402
from data_prep.procedural import FAMILIES, make_shape  # noqa: E402
from sdf_autodec.core.adaptation import AdaptConfig  # noqa: E402
from sdf_autodec.core.fitting import FitConfig  # noqa: E402
from sdf_autodec.geometry.pointcloud import nearest  # noqa: E402
from sdf_autodec.shapes.complete import CompleteConfig, complete  # noqa: E402
from sdf_autodec.shapes.mesh import MeshConfig  # noqa: E402
from sdf_autodec.shapes.observations import ObservationConfig  # noqa: E402
from sdf_autodec.shapes.pictures import RenderConfig, ViewConfig, mesh_sheet, render_inputs  # noqa: E402
from sdf_autodec.shapes.scans import read_scan  # noqa: E402

PCN = SHARED / "scans" / "pcn_demo"
REAL = {
    "chair": [("shapenet_v2/03001627/*/models/model_normalized.obj", ""), ("psb/Chair/*.off", "chair"), ("infomr/NonWheelChair/*.obj", "chair")],
    "airplane": [("shapenet_v2/02691156/*/models/model_normalized.obj", ""), ("psb/Airplane/*.off", "airplane"), ("infomr/Jet/*.obj", "airplane")],
    "car": [("infomr/Car/*.obj", "car")],
    "lamp": [("infomr/FloorLamp/*.obj", "lamp")],
}
"""``--real``: per class, the real mesh sources under ../shared/data/meshes and the ``data_prep.pose``
kind that turns them into the PCN frame ("": ShapeNetCore.v2, already canonical: turned by
``V2_TO_PCN``)."""
V2_TO_PCN = np.block([[SHAPENET_V2_TO_POSE, np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]])
"""ShapeNetCore.v2's frame (y up, front -z) into the PCN clouds' (y up, front +x), as a 4 × 4 transform."""
TO_PCN = np.block([[PROCEDURAL_TO_POSE, np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]])
"""The procedural shapes' frame (y up, a chair's front toward +z) turned into the PCN clouds' frame:
y up, the front toward +x (the demo chair's back lies at -x, its seat's edge at +x)."""


def real_meshes(folder: Path, most: int) -> None:
    """Up to ``most`` meshes of each source of ``REAL``, turned into the PCN frame, as
    ``folder/<class>/real_<source>_<name>.ply``; existing files are kept (a resumed run). A mesh
    that cannot be read or turned is skipped with a line."""
    for cls, sources in REAL.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for pattern, kind in sources:
            source = "_".join(pattern.split("/")[:2]).lower()  # shapenet_v2_03001627, psb_chair, infomr_car...
            for path in sorted((SHARED / "meshes").glob(pattern))[:most]:
                name = path.parents[1].name if kind == "" else path.stem
                out = folder / cls / f"real_{source}_{name}.ply"
                if out.exists():
                    continue
                try:
                    mesh = load_mesh(path)
                    mesh = mesh.apply_transform(V2_TO_PCN) if kind == "" else pose(mesh, kind).mesh
                except ValueError as e:  # MeshError included
                    print(f"real meshes: skipped {path}: {e}", flush=True)
                    continue
                mesh.export(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 shapes per family, 20 epochs, 50 fitting steps")
    parser.add_argument("--work", default=str(REPO / "runs" / "pcn_demo"))
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--width", type=int, default=128, help="the decoder's width (benchmarks.harness.completion_training)")
    parser.add_argument("--per-family", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--adapt", type=int, default=0, help="also complete with the decoder adapted to each cloud for this many steps (0: not)")
    parser.add_argument("--real", type=int, default=0, help="add up to this many real meshes from each source of REAL (chairs, airplanes, cars, floor lamps), posed into the PCN frame")
    parser.add_argument("--out", default="", help="folder for the stored JSON and pictures (e.g. results/pcn_demo)")
    args = parser.parse_args()
    require("pcn_demo", PCN, why="the shared data")
    setup()
    work = quick_run(args, "pcn_demo_quick", epochs=20, per_family=3, iterations=50)
    seconds = {}

    t0 = time.perf_counter()
    for family in FAMILIES:
        folder = work / "meshes" / family
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(args.per_family):
            out = folder / f"pcn_{family}_{i:03d}.ply"  # "pcn_": in the PCN frame (a work folder of the +z frame is not reused)
            if not out.exists():
                make_shape(family, np.random.default_rng([11, i])).apply_transform(TO_PCN).export(out)
    posed_sheets = []
    if args.real:
        real_meshes(work / "meshes", args.real)
        for cls in REAL:
            paths = sorted((work / "meshes" / cls).glob("real_*.ply"))
            if paths:
                posed_sheets.append(mesh_sheet(paths, work / "pictures" / f"posed_{cls}.png", size=100, columns=12, azimuth=60))
            else:
                print(f"real meshes: none of class {cls} could be read and posed", flush=True)
    report, trained = prep_and_train(work, "procedural", args.epochs, args.width, args.quick, seconds, since=t0)

    kept = set(trained.ids)  # the shapes prep kept, by file stem
    trained_classes = {path.parent.name for path in (work / "meshes").glob("*/*.ply") if path.stem in kept}
    variants = {"fit": AdaptConfig(iterations=0)}
    if args.adapt:
        variants["adapted"] = AdaptConfig(iterations=args.adapt)
    rows, pictures = {}, {}
    for variant, adapt in variants.items():
        t0 = time.perf_counter()
        out = work / ("completed" if variant == "fit" else "completed_adapt")
        done = complete(CompleteConfig(
            run=str(work / "run"), input=str(PCN), output=str(out), batch_size=4,
            fit=FitConfig(iterations=args.iterations), adapt=adapt, observe=ObservationConfig(num_surface=1500),
            mesh=MeshConfig(resolution=96 if args.quick else 160, half_size=0.55), progress=False,
        ))
        seconds[f"complete_{variant}"] = time.perf_counter() - t0
        print(f"\n{variant}: {'cloud':<10} {'points':>6} {'loss':>9} {'seen→mesh median':>17} {'p90':>8}  training class?")
        for path in sorted(PCN.glob("*.pcd")):
            name = path.stem
            entry = done["scans"].get(name, {"status": "missing"})
            row = {"status": entry["status"], "in_training_classes": name in trained_classes}
            if entry["status"] == "ok":
                seen = read_scan(path).points
                mesh = trimesh.load(entry["mesh"], force="mesh", process=False)
                surface, _ = trimesh.sample.sample_surface(mesh, 100_000, seed=0)
                d, _ = nearest(seen, np.asarray(surface))
                row.update(points=len(seen), loss=entry["loss"], seen_to_mesh_median=float(np.median(d)), seen_to_mesh_p90=float(np.percentile(d, 90)), mesh=entry["mesh"])
                print(f"{name:<10} {len(seen):6d} {entry['loss']:9.5f} {row['seen_to_mesh_median']:17.4f} {row['seen_to_mesh_p90']:8.4f}  {'yes' if row['in_training_classes'] else 'no'}")
            else:
                row["reason"] = entry.get("reason", "")
                print(f"{name:<10} {entry['status']}: {row['reason']}")
            rows.setdefault(name, {})[variant] = row
        sheet = work / "pictures" / f"pcn_{variant}.png"
        render_inputs(RenderConfig(input=str(out), output=str(work / "pictures" / variant), sheet=str(sheet), sheet_shapes=4,
                                   view=ViewConfig(size=200, views=3), progress=False))
        pictures[variant] = str(sheet)
    summary = {"frame": "PCN (as given)", "training_shapes": len(trained.ids), "real_per_source": args.real, "prep_rejected": len(report.rejected) + len(report.failed), "epochs": args.epochs, "adapt": args.adapt, "seconds": seconds, "clouds": rows, "pictures": pictures}
    if args.out:
        store = Path(args.out)
        store.mkdir(parents=True, exist_ok=True)
        for sheet in [*pictures.values(), *posed_sheets]:
            (store / Path(sheet).name).write_bytes(Path(sheet).read_bytes())
    finish(summary, Path(args.out) / "pcn_demo.json" if args.out else "")


if __name__ == "__main__":
    main()
