"""Completion of raw partial point clouds with no camera: the four PCN demo clouds in
../shared/data/scans/pcn_demo (airplane, car, chair, lamp; no ground truth).

    .venv/bin/python benchmarks/pcn_demo.py [--quick] [--work DIR] [--epochs N] [--per-family N] [--adapt STEPS] [--out DIR]

1. Training shapes: procedural chairs, tables, lamps and shelves (``data_prep.procedural``; y up,
   like ShapeNet), prepped with ``normalization=unit_cube``: the PCN clouds are already in a
   normalised ShapeNet frame of about ``[-0.5, 0.5]^3``, so they enter the model as they are.
   There is no airplane or car among the training shapes: those two completions can only borrow
   from the other classes, and are reported as such.
2. ``train`` the small decoder with a 64-dimensional code.
3. ``complete`` the clouds: no camera, so normals are estimated with Open3D (made consistent by
   tangent-plane propagation, then turned to point away from the centroid on average) and the
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
import json
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_prep.prep import PrepConfig, prep_dataset  # noqa: E402
from data_prep.procedural import FAMILIES, make_shape  # noqa: E402
from data_prep.sampling import SampleConfig  # noqa: E402
from data_prep.scanner import ScanConfig  # noqa: E402
from sdf_autodec.core.adaptation import AdaptConfig  # noqa: E402
from sdf_autodec.core.fitting import FitConfig  # noqa: E402
from sdf_autodec.geometry.pointcloud import nearest  # noqa: E402
from sdf_autodec.nn.mlp import DecoderConfig  # noqa: E402
from sdf_autodec.optional import tune_glibc_malloc  # noqa: E402
from sdf_autodec.shapes.complete import CompleteConfig, complete  # noqa: E402
from sdf_autodec.shapes.mesh import MeshConfig  # noqa: E402
from sdf_autodec.shapes.observations import ObservationConfig  # noqa: E402
from sdf_autodec.shapes.pictures import RenderConfig, ViewConfig, render_inputs  # noqa: E402
from sdf_autodec.shapes.scans import read_scan  # noqa: E402
from sdf_autodec.shapes.train import TrainConfig, train  # noqa: E402

PCN = REPO.parent / "shared" / "data" / "scans" / "pcn_demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 shapes per family, 20 epochs, 50 fitting steps")
    parser.add_argument("--work", default=str(REPO / "runs" / "pcn_demo"))
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--per-family", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--adapt", type=int, default=0, help="also complete with the decoder adapted to each cloud for this many steps (0: not)")
    parser.add_argument("--out", default="", help="folder for the stored JSON and pictures (e.g. results/pcn_demo)")
    args = parser.parse_args()
    if not PCN.is_dir():
        sys.exit(f"benchmarks/pcn_demo.py: {PCN} is absent; it needs the shared data")
    tune_glibc_malloc()
    if args.quick:
        args.work, args.epochs, args.per_family, args.iterations = str(Path(args.work).with_name("pcn_demo_quick")), 20, 3, 50
    work = Path(args.work)
    seconds = {}

    t0 = time.perf_counter()
    for family in FAMILIES:
        folder = work / "meshes" / family
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(args.per_family):
            out = folder / f"{family}_{i:03d}.ply"
            if not out.exists():
                make_shape(family, np.random.default_rng([11, i])).export(out)
    report = prep_dataset(
        PrepConfig(input=str(work / "meshes"), output=str(work / "data"), dataset="procedural", normalization="unit_cube",
                   samples=SampleConfig(num_samples=20_000 if args.quick else 100_000, surface_points=5_000),
                   scans=ScanConfig(views=0), test_fraction=0.0, workers=1, progress=False)
    )
    seconds["prep"] = time.perf_counter() - t0
    print(f"prep: {len(report.ok)} shapes ok ({seconds['prep']:.0f} s)", flush=True)

    t0 = time.perf_counter()
    model = DecoderConfig(latent_size=64, depth=5, width=128, skip_layers=[3], weight_norm=True, dropout=0.0, output_tanh=True)
    trained = train(TrainConfig(
        data=str(work / "data"), run=str(work / "run"), model=model, epochs=args.epochs, scenes_per_batch=8, samples_per_scene=2048,
        lr_decoder=2e-3, lr_codes=4e-3, lr_halve_every=max(1, args.epochs // 2), code_reg_rampup_epochs=max(1, args.epochs // 10),
        checkpoint_every=50, progress=False,
    ))
    seconds["train"] = time.perf_counter() - t0
    print(f"train: {len(trained.ids)} shapes, {args.epochs} epochs ({seconds['train']:.0f} s)", flush=True)

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
            row = {"status": entry["status"], "in_training_classes": name in FAMILIES}
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
    summary = {"frame": "PCN (as given)", "training_shapes": len(trained.ids), "epochs": args.epochs, "adapt": args.adapt, "seconds": seconds, "clouds": rows, "pictures": pictures}
    if args.out:
        store = Path(args.out)
        store.mkdir(parents=True, exist_ok=True)
        for variant, sheet in pictures.items():
            (store / Path(sheet).name).write_bytes(Path(sheet).read_bytes())
        (store / "pcn_demo.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
