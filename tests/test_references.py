"""The trivial answers beside a completion: retrieval, mean shape, oracle and the scan itself."""

import csv

import pytest

from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.storage.layout import DatasetLayout, read_split
from sdf_autodec.shapes.complete import CompleteConfig, complete
from sdf_autodec.shapes.evaluate import EvalConfig, evaluate
from sdf_autodec.shapes.mesh import MeshConfig


def _scans(data_dir, folder, split):
    layout = DatasetLayout(data_dir)
    folder.mkdir()
    keys = read_split(layout.split(split))
    for key in keys:
        (folder / layout.scan(key, 0).name).write_bytes(layout.scan(key, 0).read_bytes())
    return keys


@pytest.fixture(scope="module")
def completed_training_scans(recon_run, data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("refs")
    keys = _scans(data_dir, root / "scans", "all")
    cfg = CompleteConfig(run=str(recon_run), input=str(root / "scans"), output=str(root / "out"), fit=FitConfig(iterations=60, lr=1e-2), init="nearest", mesh=MeshConfig(resolution=32), progress=False)
    cfg.observe.num_surface = 500
    return root, keys, complete(cfg)


def test_retrieval_picks_the_scanned_training_shape(completed_training_scans):
    root, keys, report = completed_training_scans
    for key in keys:
        entry = report["scans"][f"{key.id}_v00"]
        assert entry["retrieved"] == key.id, entry
    assert (root / "out" / "references" / "mean_shape.ply").is_file()
    assert sorted(p.stem for p in (root / "out" / "references" / "retrieval").glob("*.ply")) == sorted(f"{k.id}_v00" for k in keys)


def test_eval_scores_ours_beside_the_references(completed_training_scans, data_dir):
    root, keys, _ = completed_training_scans
    result = evaluate(EvalConfig(pred=str(root / "out"), gt=str(data_dir), output=str(root / "m.json"), scans=str(root / "scans"), num_points=2000, iou_points=0, progress=False))
    assert result["count"] == len(keys)  # the references/ meshes are not taken for predictions
    methods = result["methods"]
    assert set(methods) == {"ours", "mean_shape", "retrieval", "oracle", "scan"}
    for name in ("mean_shape", "retrieval", "oracle", "scan"):
        assert methods[name]["count"] == len(keys), (name, methods[name]["missing"])
    for key in keys:  # a scan of a training shape: the oracle is that very shape, and nearly perfect
        row = methods["oracle"]["shapes"][f"{key.id}_v00"]
        assert row["training_shape"] == key.id and row["chamfer"] < 1e-3
    # the retrieved training shape is (much) closer than the mean shape; the scan alone is accurate, incomplete
    assert methods["retrieval"]["median"]["chamfer"] < methods["mean_shape"]["median"]["chamfer"]
    assert methods["scan"]["median"]["chamfer"] > 0 and "beats_retrieval" in result["comparison"]
    with open(root / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"ours", "mean_shape", "retrieval", "oracle", "scan"}
    assert sum(1 for r in rows if r["method"] == "ours" and r["mesh"] not in ("mean", "median")) == len(keys)


def test_eval_without_a_report_scores_ours_alone(trained_run, data_dir, tmp_path):
    from sdf_autodec.shapes.mesh_codes import MeshRunConfig, mesh_run

    mesh_run(MeshRunConfig(run=str(trained_run), output=str(tmp_path / "m"), mesh=MeshConfig(resolution=32), progress=False))
    result = evaluate(EvalConfig(pred=str(tmp_path / "m"), gt=str(data_dir), output=str(tmp_path / "m.json"), num_points=1000, iou_points=0, progress=False))
    assert result["comparison"] == {} and all(e["count"] == 0 for m, e in result["methods"].items() if m != "ours")
    assert "naming the run" in next(iter(result["methods"]["oracle"]["missing"].values()))


def test_bad_scans_get_one_line_and_the_batch_is_completed(recon_run, data_dir, tmp_path):
    import numpy as np

    keys = _scans(data_dir, tmp_path / "scans", "all")
    good = tmp_path / "scans" / f"{keys[0].id}_v00.npz"
    with np.load(good) as z:
        points, camera = z["points"].copy(), z["camera_origin"].copy()
    points[::7] = np.nan  # every 7th point lost
    np.savez(tmp_path / "scans" / "holes.npz", points=points, camera_origin=camera)
    np.savez(tmp_path / "scans" / "few.npz", points=np.concatenate([points[1:6], np.full((40, 3), np.nan)]), camera_origin=camera)
    cfg = CompleteConfig(run=str(recon_run), input=str(tmp_path / "scans"), output=str(tmp_path / "out"), fit=FitConfig(iterations=10), mesh=MeshConfig(resolution=16), progress=False)
    cfg.observe.num_surface = 200
    report = complete(cfg)["scans"]
    assert report["few"]["status"] == "failed" and "few.npz" in report["few"]["reason"] and "5 finite points" in report["few"]["reason"]
    assert report["holes"]["non_finite_points_dropped"] == len(points[::7]) and "loss" in report["holes"]
    assert all("loss" in report[f"{k.id}_v00"] for k in keys)  # the rest of the batch was fitted
