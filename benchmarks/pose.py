"""How well ``data_prep.pose`` finds up and front on real meshes in arbitrary pose.

    .venv/bin/python benchmarks/pose.py [--rotations N] [--work DIR] [--out results/pose]

1. **Measured against the truth**: the 16 ShapeNetCore.v2 models of ../shared/data/meshes/shapenet_v2
   (10 chairs, 6 airplanes) are canonical (y up, front -z), so each is turned by ``N`` random rotations
   (seeded) and posed; the error is the angle between the pose found and the true one (ShapeNet v2 → the
   pose frame: x' = -z, z' = x). Counted right when under 15 degrees. The samples are seeded, so the
   rules see the same surface in every rotation: the rotations check that nothing depends on the
   pose given, and the models, not the trials, are the sample size.
2. **Looked at**: contact sheets of every real chair, airplane, car and floor-lamp class here as posed
   (InfoMR NonWheelChair, Jet (first 48), Car, FloorLamp; PSB Chair, Airplane), seen from the front-right
   (azimuth 60: the front, +x, faces right), for counting by eye. Each sheet's symmetry errors are in
   the JSON.

The last line is JSON: the per-model errors, the count within 15 degrees, the sheets' paths.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import SHARED, finish, require  # noqa: E402

from data_prep.mesh_io import load_mesh  # noqa: E402
from data_prep.pose import SHAPENET_V2_TO_POSE, pose, rotation_angle_deg  # noqa: E402
from sdf_autodec.shapes.pictures import mesh_sheet  # noqa: E402

MESHES = SHARED / "meshes"
SHEETS = {
    "infomr_chair": ("infomr/NonWheelChair/*.obj", "chair"),
    "infomr_jet": ("infomr/Jet/*.obj", "airplane"),
    "infomr_car": ("infomr/Car/*.obj", "car"),
    "psb_chair": ("psb/Chair/*.off", "chair"),
    "psb_airplane": ("psb/Airplane/*.off", "airplane"),
    "infomr_floor_lamp": ("infomr/FloorLamp/*.obj", "lamp"),
}
"""Contact sheets: (glob under ../shared/data/meshes, pose kind); at most 48 meshes each."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=3, help="random rotations per ShapeNet model")
    parser.add_argument("--work", default=str(REPO / "runs" / "pose"), help="folder for the posed meshes")
    parser.add_argument("--out", default=str(REPO / "runs" / "pose"), help="folder for the JSON and the contact sheets")
    args = parser.parse_args()
    require("pose", MESHES, why="the shared data")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    errors: dict[str, list[float]] = {}
    for path in sorted(MESHES.glob("shapenet_v2/*/*/models/model_normalized.obj")):
        kind = "airplane" if path.parts[-4] == "02691156" else "chair"
        mesh = load_mesh(path)
        name = f"{kind}/{path.parts[-3]}"
        for _ in range(args.rotations):
            rotation = trimesh.transformations.random_rotation_matrix(rng.random(3))[:3, :3]
            found = pose(trimesh.Trimesh(mesh.vertices @ rotation.T, mesh.faces, process=False), kind)
            errors.setdefault(name, []).append(round(rotation_angle_deg(found.rotation @ rotation, SHAPENET_V2_TO_POSE), 2))
        print(f"{name:<45} error (degrees) {errors[name]}", flush=True)
    trials = [e for v in errors.values() for e in v]
    right = sum(e < 15.0 for e in trials)
    models_right = sum(max(v) < 15.0 for v in errors.values())
    print(f"ShapeNet v2: {models_right} of {len(errors)} models ({right} of {len(trials)} poses) within 15 degrees (median error {np.median(trials):.1f})", flush=True)

    sheets: dict[str, dict] = {}
    for sheet, (pattern, kind) in SHEETS.items():
        folder = Path(args.work) / "posed" / sheet
        shutil.rmtree(folder, ignore_errors=True)  # only this run's meshes on the sheet
        folder.mkdir(parents=True)
        symmetry, failed = {}, {}
        for path in sorted(MESHES.glob(pattern))[:48]:
            try:
                found = pose(load_mesh(path), kind)
            except ValueError as e:
                failed[path.stem] = str(e)
                continue
            found.mesh.export(folder / f"{path.stem}.ply")
            symmetry[path.stem] = round(found.symmetry_error, 4)
        if not symmetry:
            print(f"{sheet}: no mesh of {pattern} could be read and posed", flush=True)
            continue
        png = mesh_sheet(sorted(folder.glob("*.ply")), out / f"{sheet}.png", size=100, columns=12, azimuth=60)
        sheets[sheet] = {"kind": kind, "posed": len(symmetry), "failed": failed, "png": png.name, "symmetry_error": symmetry}
        print(f"{sheet}: {len(symmetry)} posed ({len(failed)} failed) → {png}", flush=True)
    summary = {
        "shapenet_v2": {"models": len(errors), "models_within_15_deg": models_right, "trials": len(trials), "within_15_deg": right, "median_error_deg": float(np.median(trials)), "max_error_deg": float(np.max(trials)), "errors_deg": errors},
        "sheets": sheets, "seconds": round(time.perf_counter() - t0, 1),
    }
    finish(summary, out / "pose.json")


if __name__ == "__main__":
    main()
