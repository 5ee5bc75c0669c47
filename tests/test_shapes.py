"""Shapes domain: training, resume, meshing, metrics, observations and completion."""

import json

import numpy as np
import pytest
import torch
import trimesh

from conftest import tiny_train_config
from sdf_autodec.core.adaptation import AdaptConfig
from sdf_autodec.core.checkpoint import CheckpointError
from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.geometry.analytic import box_sdf, sphere_sdf
from sdf_autodec.geometry.grid import grid_points
from sdf_autodec.storage.layout import DatasetError, DatasetLayout, read_split
from sdf_autodec.shapes.complete import CompleteConfig, complete
from sdf_autodec.shapes.evaluate import EvalConfig, evaluate
from sdf_autodec.shapes.mesh import EmptyLevelSet, MeshConfig, marching_cubes_mesh
from sdf_autodec.shapes.metrics import point_metrics
from sdf_autodec.shapes.observations import ObservationConfig, observe
from sdf_autodec.shapes.mesh_codes import MeshRunConfig, mesh_run
from sdf_autodec.shapes.scans import PartialScan, ScanError, read_scan
from sdf_autodec.shapes.train import train


def test_two_epoch_training_smoke(data_dir, tmp_path):
    model = train(tiny_train_config(data_dir, tmp_path / "run", epochs=2))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
    assert model.latents.shape == (2, 8)  # the train split of the tiny data
    assert set(model.ids) == {k.id for k in read_split(DatasetLayout(data_dir).split("train"))}
    assert (tmp_path / "run" / "loss.png").is_file()


def test_training_lowers_the_loss(trained_run):
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["data"] < 0.7 * rows[0]["data"]


def test_resume_reproduces_an_uninterrupted_run(data_dir, tmp_path):
    straight = train(tiny_train_config(data_dir, tmp_path / "a", epochs=4))
    train(tiny_train_config(data_dir, tmp_path / "b", epochs=2))
    resumed = train(tiny_train_config(data_dir, tmp_path / "b", epochs=4))
    for (name, a), (_, b) in zip(straight.decoder.state_dict().items(), resumed.decoder.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(straight.latents, resumed.latents)
    assert len((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()) == 4


def test_resume_refuses_another_model(data_dir, tmp_path):
    train(tiny_train_config(data_dir, tmp_path / "r", epochs=2))
    cfg = tiny_train_config(data_dir, tmp_path / "r", epochs=3)
    cfg.model.width = 48
    with pytest.raises(CheckpointError, match="trained with model"):
        train(cfg)


def test_missing_data_and_bad_split_are_clear(data_dir, tmp_path):
    with pytest.raises(DatasetError, match="data directory not found"):
        train(tiny_train_config(tmp_path / "nowhere", tmp_path / "r"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no shapes"):
        train(tiny_train_config(tmp_path / "empty", tmp_path / "r"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tiny": {"round": ["ball", "ghost"]}}))
    with pytest.raises(DatasetError, match="ghost"):
        train(tiny_train_config(data_dir, tmp_path / "r", split=str(bad)))


def test_marching_cubes_of_an_analytic_sphere():
    res = 64
    values = sphere_sdf(grid_points(res), 0.5).reshape(res, res, res)
    mesh = marching_cubes_mesh(values)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(radii - 0.5).max() < 2.0 / (res - 1) * 0.1
    assert mesh.is_watertight and mesh.volume > 0  # outward-facing
    assert abs(mesh.volume - 4 / 3 * np.pi * 0.125) / (4 / 3 * np.pi * 0.125) < 0.01


def test_marching_cubes_of_a_box_is_where_the_box_is():
    res = 41
    values = box_sdf(grid_points(res), (0.5, 0.25, 0.75)).reshape(res, res, res)
    mesh = marching_cubes_mesh(values)
    np.testing.assert_allclose(mesh.bounds, [[-0.5, -0.25, -0.75], [0.5, 0.25, 0.75]], atol=1e-6)


def test_empty_level_set_is_a_clear_error():
    with pytest.raises(EmptyLevelSet, match="no surface"):
        marching_cubes_mesh(torch.ones(8, 8, 8))


def test_chamfer_and_fscore_on_known_point_sets():
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    pred = gt + [0.0, 0.1, 0.0]
    m = point_metrics(pred, gt, scale=1.0)
    assert np.isclose(m["chamfer"], 0.01 + 0.01) and np.isclose(m["chamfer_x1000"], 20.0)
    assert np.isclose(m["chamfer_l1"], 0.1)
    assert m["fscore@1%"] == 0.0 and m["fscore@2%"] == 0.0
    m = point_metrics(gt + [0.0, 0.005, 0.0], gt, scale=1.0)
    assert m["fscore@1%"] == 1.0
    # one extra far point in pred: precision 2/3, recall 1
    m = point_metrics(np.vstack([gt, [[5.0, 0, 0]]]), gt, scale=1.0)
    assert np.isclose(m["fscore@1%"], 2 * (2 / 3) / (2 / 3 + 1))
    assert np.isclose(m["chamfer"], 16.0 / 3)


def test_normal_consistency_is_orientation_free():
    pts = np.random.default_rng(0).normal(size=(200, 3))
    n = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    assert np.isclose(point_metrics(pts, pts, n, -n)["normal_consistency"], 1.0)


def test_observations_from_a_scan_with_camera():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(8000, 3))
    pts = 0.5 * d / np.linalg.norm(d, axis=1, keepdims=True)
    camera = np.array([0.0, 0.0, 2.5])
    pts = pts[np.sum(pts * (camera - pts), axis=1) > 0]  # what the camera sees
    obs = observe(PartialScan("s", pts, camera), ObservationConfig(num_surface=200, eta=0.01), rng)
    n = 200
    assert obs.queries.shape == (4 * n, 3) and obs.lower_bound.sum() == n
    truth = sphere_sdf(obs.queries, 0.5)
    exact = ~obs.lower_bound
    np.testing.assert_allclose(truth[exact], obs.targets[exact], atol=1e-3)  # ±eta |cos θ| along the rays
    assert (truth[obs.lower_bound] >= obs.targets[obs.lower_bound]).all()  # free space really is outside
    assert (np.linalg.norm(obs.queries[obs.lower_bound], axis=1) <= 1.0 + 1e-6).all()


def test_camera_offsets_along_normals_turned_towards_the_camera():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(8000, 3))
    pts = 0.5 * d / np.linalg.norm(d, axis=1, keepdims=True)
    camera = np.array([0.0, 0.0, 2.5])
    pts = pts[np.sum(pts * (camera - pts), axis=1) > 0]
    # the whole visible half, grazing points included: offsets along the (camera-oriented) normal keep their full size
    obs = observe(PartialScan("s", pts, camera), ObservationConfig(num_surface=300, eta=0.01, camera_offsets="normal"), rng)
    n = 300
    truth = sphere_sdf(obs.queries, 0.5)
    np.testing.assert_allclose(truth[:n], 0.0, atol=1e-6)
    np.testing.assert_allclose(obs.targets[n : 3 * n], np.r_[np.full(n, 0.01), np.full(n, -0.01)])
    np.testing.assert_allclose(truth[n : 3 * n], obs.targets[n : 3 * n], atol=2e-3)  # outside in front, inside behind: never flipped
    assert (truth[obs.lower_bound] >= 0).all()
    with pytest.raises(ValueError, match="camera_offsets"):
        observe(PartialScan("s", pts, camera), ObservationConfig(camera_offsets="sideways"), rng)


def test_free_space_hinge_is_one_sided():
    from sdf_autodec.core.observations import Observations
    from sdf_autodec.shapes.loss import clamped_l1

    obs = Observations(torch.zeros(1, 3, 3), torch.tensor([[0.0, 0.0, 0.05]]), lower_bound=torch.tensor([[True, True, False]]))
    pred = torch.tensor([[[0.08], [-0.03], [0.02]]])
    assert torch.allclose(clamped_l1(pred, obs, 0.1), torch.tensor([[0.0, 0.03, 0.03]]))


def _copied_scans(data_dir, tmp_path, split: str, count: int | None = None):
    """A folder ``tmp_path/scans`` holding the first view's scan of the first ``count`` shapes of ``split``."""
    layout = DatasetLayout(data_dir)
    scans = tmp_path / "scans"
    scans.mkdir()
    for key in read_split(layout.split(split))[:count]:
        (scans / layout.scan(key, 0).name).write_bytes(layout.scan(key, 0).read_bytes())
    return scans


def test_completion_lowers_the_observation_loss(trained_run, data_dir, tmp_path):
    scans = _copied_scans(data_dir, tmp_path, "test")
    (scans / "broken.npz").write_bytes(b"not an npz")
    cfg = CompleteConfig(run=str(trained_run), input=str(scans), output=str(tmp_path / "out"), fit=FitConfig(iterations=60), mesh=MeshConfig(resolution=32), progress=False)
    cfg.observe.num_surface = 500
    report = complete(cfg)
    assert report["scans"]["broken"]["status"] == "failed" and "broken.npz" in report["scans"]["broken"]["reason"]
    done = {k: v for k, v in report["scans"].items() if k != "broken"}
    assert len(done) == 2
    for entry in done.values():
        assert entry["loss"] < entry["initial_loss"]
    with np.load(tmp_path / "out" / "latents.npz") as z:
        assert z["codes"].shape == (2, 8)
    # the fitted codes can be meshed again, in batches, by `mesh latents=`
    remeshed = mesh_run(MeshRunConfig(run=str(trained_run), output=str(tmp_path / "again"), latents=str(tmp_path / "out"), mesh=MeshConfig(resolution=32), batch_size=2, progress=False))
    assert set(remeshed) == set(done)
    for name, entry in remeshed.items():
        if entry["status"] == "ok" and done[name]["status"] == "ok":
            a, b = trimesh.load(entry["mesh"]), trimesh.load(done[name]["mesh"])
            np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-6)


def test_adapted_completion_explains_the_scan_better_and_does_not_depend_on_batching(trained_run, data_dir, tmp_path):
    scans = _copied_scans(data_dir, tmp_path, "test")
    runs = {}
    for name, batch_size, steps in (("fit", 2, 0), ("adapted", 2, 40), ("adapted_alone", 1, 40)):
        cfg = CompleteConfig(run=str(trained_run), input=str(scans), output=str(tmp_path / name), batch_size=batch_size, references=False,
                             fit=FitConfig(iterations=40), adapt=AdaptConfig(iterations=steps), mesh=MeshConfig(resolution=32), progress=False)
        cfg.observe.num_surface = 300
        runs[name] = complete(cfg)["scans"]
    assert len(runs["adapted"]) == 2
    for scan, entry in runs["adapted"].items():
        assert "adapted_data_loss" not in runs["fit"][scan]
        assert entry["data_loss"] == pytest.approx(runs["fit"][scan]["data_loss"])  # the code is the fit's
        assert entry["adapted_data_loss"] < 0.9 * entry["data_loss"]
        alone = runs["adapted_alone"][scan]
        assert alone["adapted_data_loss"] == pytest.approx(entry["adapted_data_loss"], rel=1e-4)
        if entry["status"] == "ok" and alone["status"] == "ok":
            np.testing.assert_allclose(trimesh.load(entry["mesh"]).vertices, trimesh.load(alone["mesh"]).vertices, atol=1e-4)


def test_mesh_and_eval_commands(trained_run, data_dir, tmp_path):
    report = mesh_run(MeshRunConfig(run=str(trained_run), output=str(tmp_path / "m"), mesh=MeshConfig(resolution=32), progress=False))
    ok = [k for k, v in report.items() if v["status"] == "ok"]
    assert ok, report
    result = evaluate(EvalConfig(pred=str(tmp_path / "m"), gt=str(data_dir), output=str(tmp_path / "metrics.json"), num_points=2000, progress=False))
    assert set(result["shapes"]) == set(ok) and result["count"] == len(ok)
    assert {"chamfer", "chamfer_x1000", "fscore@1%", "fscore@2%", "normal_consistency"} <= set(result["mean"])
    assert json.loads((tmp_path / "metrics.json").read_text())["count"] == len(ok)


def test_mesh_in_source_frame_round_trips(trained_run, data_dir, tmp_path):
    normalized = mesh_run(MeshRunConfig(run=str(trained_run), output=str(tmp_path / "n"), mesh=MeshConfig(resolution=32), progress=False))
    ok = [k for k, v in normalized.items() if v["status"] == "ok"]
    assert ok, normalized
    source = mesh_run(MeshRunConfig(run=str(trained_run), output=str(tmp_path / "s"), ids=ok, mesh=MeshConfig(resolution=32), frame="source", progress=False))
    a, b = trimesh.load(normalized[ok[0]]["mesh"]), trimesh.load(source[ok[0]]["mesh"])
    assert not np.allclose(a.vertices, b.vertices)
    a_eval = evaluate(EvalConfig(pred=str(tmp_path / "n"), gt=str(data_dir), output=str(tmp_path / "a.json"), num_points=1000, progress=False))
    b_eval = evaluate(EvalConfig(pred=str(tmp_path / "s"), gt=str(data_dir), output=str(tmp_path / "b.json"), pred_frame="source", num_points=1000, progress=False))
    assert np.isclose(a_eval["mean"]["chamfer"], b_eval["mean"]["chamfer"], rtol=1e-3)


def test_read_scan_formats(tmp_path):
    pts = np.random.default_rng(0).normal(size=(50, 3))
    np.savez(tmp_path / "a.npz", points=pts, camera_origin=np.array([0, 0, 3.0]))
    s = read_scan(tmp_path / "a.npz")
    assert s.points.shape == (50, 3) and s.camera_origin.tolist() == [0, 0, 3.0]
    (tmp_path / "b.pcd").write_text("VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 50\nHEIGHT 1\nPOINTS 50\nDATA ascii\n" + "\n".join(" ".join(map(str, p)) for p in pts) + "\n")
    s = read_scan(tmp_path / "b.pcd")
    assert s.points.shape == (50, 3) and s.camera_origin is None


def test_completion_does_not_depend_on_batching(trained_run, data_dir, tmp_path):
    scans = _copied_scans(data_dir, tmp_path, "all", 3)
    codes = []
    for batch_size in (1, 3):
        cfg = CompleteConfig(run=str(trained_run), input=str(scans), output=str(tmp_path / f"b{batch_size}"), batch_size=batch_size, fit=FitConfig(iterations=20), mesh=MeshConfig(resolution=16), progress=False)
        cfg.observe.num_surface = 200
        complete(cfg)
        with np.load(tmp_path / f"b{batch_size}" / "latents.npz") as z:
            codes.append(z["codes"])
    np.testing.assert_allclose(codes[0], codes[1], atol=1e-5)


def test_packed_store_is_reused_and_rebuilt_when_stale(data_dir, tmp_path):
    import shutil

    from sdf_autodec.storage.layout import read_sdf_samples, write_sdf_samples
    from sdf_autodec.storage.packed import open_packed
    from sdf_autodec.shapes.dataset import PackedSdfSamples

    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    store = open_packed(data)
    stamp = (data / "Packed" / "pos.npy").stat().st_mtime_ns
    assert (data / "Packed" / "pos.npy").stat().st_mtime_ns == stamp and open_packed(data).keys == store.keys  # reused
    key = store.keys[0]
    layout = DatasetLayout(data)
    pos, neg = read_sdf_samples(layout.sdf(key))
    first = PackedSdfSamples(data, [key]).sample(torch.tensor([0]), 8, torch.Generator().manual_seed(0))
    rows = np.concatenate([pos[:10], neg[:10]])
    write_sdf_samples(layout.sdf(key), rows[:, :3], rows[:, 3] + 0.5)  # every sample now outside
    with pytest.raises(DatasetError, match="brick.npz: no negative SDF samples"):
        PackedSdfSamples(data, [key])  # the changed file is noticed: the store is rebuilt from it
    write_sdf_samples(layout.sdf(key), rows[:, :3], rows[:, 3])
    xyz, sdf = PackedSdfSamples(data, [key]).sample(torch.tensor([0]), 8, torch.Generator().manual_seed(0))
    assert (data / "Packed" / "pos.npy").stat().st_mtime_ns != stamp
    assert xyz.shape == (1, 8, 3) and set(np.round(sdf.numpy().ravel(), 6)) <= set(np.round(rows[:, 3], 6))
    assert first[0].shape == (1, 8, 3)


class _Analytic(torch.nn.Module):
    """A 'decoder' that ignores its code: a sphere joined to a thin box (exact SDF inside and out)."""

    def forward(self, z, q):
        return torch.minimum(sphere_sdf(q, 0.5), box_sdf(q, (0.2, 0.6, 0.05), (0.3, 0.1, 0.0)))[..., None]


@pytest.mark.parametrize("resolution", [33, 96, 200])
def test_coarse_to_fine_equals_dense_on_an_analytic_shape(resolution):
    from sdf_autodec.shapes.mesh import grid_values

    dense = grid_values(_Analytic(), torch.zeros(1), MeshConfig(resolution=resolution, method="dense"))
    fast = grid_values(_Analytic(), torch.zeros(1), MeshConfig(resolution=resolution))
    assert not torch.isnan(fast.values).any()
    assert torch.equal(fast.values < 0, dense.values < 0)
    a, b = marching_cubes_mesh(fast.values), marching_cubes_mesh(dense.values)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_allclose(a.vertices, b.vertices, atol=1e-7)
    if resolution == 200:
        assert dense.queries / fast.queries > 8


def test_coarse_to_fine_equals_dense_on_a_trained_decoder(trained_run):
    from sdf_autodec.shapes.mesh import grid_values
    from sdf_autodec.shapes.metrics import point_metrics
    from sdf_autodec.shapes.train import load_trained

    model = load_trained(trained_run)
    compared = 0
    for code in model.latents:
        # a decoder trained with clamp 0.1 saturates near ±0.1, so only blocks whose (safety-factored)
        # half-diagonal is below that can be ruled out: at 96³ those are 2-cell blocks
        dense = grid_values(model.decoder, code, MeshConfig(resolution=96, method="dense"))
        fast = grid_values(model.decoder, code, MeshConfig(resolution=96, blocks=[8, 2]))
        assert fast.queries < dense.queries
        try:
            a, b = marching_cubes_mesh(fast.values), marching_cubes_mesh(dense.values)
        except EmptyLevelSet:
            continue
        compared += 1
        assert len(a.faces) == len(b.faces)
        assert point_metrics(a.vertices, b.vertices, scale=2.0)["chamfer"] <= 1e-5
    assert compared > 0


def test_observations_from_several_cameras_one_per_point(tmp_path):
    rng = np.random.default_rng(1)
    d = rng.normal(size=(8000, 3))
    pts = 0.5 * d / np.linalg.norm(d, axis=1, keepdims=True)
    cameras = [np.array([0.0, 0.0, 2.5]), np.array([2.5, 0.0, 0.0]), np.array([0.0, -2.5, 0.0])]
    seen = [pts[np.sum(pts * (c - pts), axis=1) > 0] for c in cameras]
    points = np.concatenate(seen)
    origins = np.concatenate([np.broadcast_to(c, s.shape) for c, s in zip(cameras, seen)])
    np.savez(tmp_path / "three_views.npz", points=points, camera_origins=origins)
    scan = read_scan(tmp_path / "three_views.npz")
    assert scan.camera_origin.shape == points.shape
    obs = observe(scan, ObservationConfig(num_surface=300, eta=0.01), rng)
    truth = sphere_sdf(obs.queries, 0.5)
    exact = ~obs.lower_bound
    np.testing.assert_allclose(truth[exact], obs.targets[exact], atol=1e-3)
    assert (truth[obs.lower_bound] >= 0).all() and obs.lower_bound.sum() == 300
    np.savez(tmp_path / "bad.npz", points=points, camera_origins=origins[:10])
    with pytest.raises(ScanError, match="bad.npz: camera_origins has shape"):
        read_scan(tmp_path / "bad.npz")


def test_a_smaller_grid_cube_keeps_the_mesh_in_place():
    from sdf_autodec.shapes.mesh import extract_mesh

    for method in ("dense", "coarse_to_fine"):
        mesh = extract_mesh(_Analytic(), torch.zeros(1), MeshConfig(resolution=64, method=method, half_size=0.7))
        assert np.abs(mesh.vertices).max() <= 0.7 + 1e-6
        truth = _Analytic()(None, torch.from_numpy(mesh.vertices).float()[None])[0, :, 0].numpy()
        assert np.abs(truth).max() < 2 * 1.4 / 63  # vertices lie on the true surface to within the cell size


def test_meshing_several_shapes_together_equals_one_by_one(trained_run):
    from sdf_autodec.shapes.mesh import extract_meshes, grid_values
    from sdf_autodec.shapes.train import load_trained

    model = load_trained(trained_run)
    codes = model.latents[:3]
    cfg = MeshConfig(resolution=48, blocks=[8, 2], max_batch=5000)  # small chunks: shapes share decoder passes
    together = extract_meshes(model.decoder, codes, cfg)
    for code, mesh in zip(codes, together):
        alone = grid_values(model.decoder, code, cfg)
        try:
            expected = marching_cubes_mesh(alone.values)
        except EmptyLevelSet:
            assert isinstance(mesh, EmptyLevelSet)
            continue
        np.testing.assert_array_equal(mesh.faces, expected.faces)
        np.testing.assert_allclose(mesh.vertices, expected.vertices, atol=1e-6)


def _seen_cap(camera: np.ndarray, radius: float = 0.5, count: int = 3000, seed: int = 2) -> np.ndarray:
    """The part of a sphere of ``radius`` at the origin that ``camera`` sees, ``(M, 3)``."""
    d = np.random.default_rng(seed).normal(size=(count, 3))
    pts = radius * d / np.linalg.norm(d, axis=1, keepdims=True)
    return pts[np.sum(pts * (camera - pts), axis=1) > 0]


def test_viewpoint_orientation_turns_a_single_view_cloud_outwards():
    from sdf_autodec.shapes.scans import estimate_normals, estimate_viewpoint

    camera = np.array([0.3, 2.0, 0.5])
    cap = _seen_cap(camera)
    found, seen = estimate_viewpoint(cap)
    cosine = np.dot(found - cap.mean(0), camera - cap.mean(0)) / np.linalg.norm(found - cap.mean(0)) / np.linalg.norm(camera - cap.mean(0))
    assert seen > 0.95 and abs(cosine) > np.cos(np.deg2rad(30))  # on the camera's axis; a cap is seen whole from its hollow side too
    normals = estimate_normals(cap, 30, orient="viewpoint")
    assert np.mean(np.sum(normals * cap, axis=1) > 0) > 0.99  # outwards, on a sphere: along the position
    # a whole sphere is seen from no single place: the centroid rule decides, and also gets it right
    whole = np.concatenate([cap, _seen_cap(-camera)])
    assert np.mean(np.sum(estimate_normals(whole, 30, orient="viewpoint") * whole, axis=1) > 0) > 0.99
    with pytest.raises(ValueError, match="orient must be one of"):
        estimate_normals(cap, 30, orient="sideways")


def test_camera_less_scans_are_fitted_in_both_orientations(trained_run, data_dir, tmp_path):
    layout = DatasetLayout(data_dir)
    scans = tmp_path / "scans"
    scans.mkdir()
    for key in read_split(layout.split("all"))[:2]:
        with np.load(layout.scan(key, 0)) as z:
            np.savez(scans / layout.scan(key, 0).name, points=z["points"])  # a raw cloud: no camera, no normals
    runs = {}
    for both in (True, False):
        cfg = CompleteConfig(run=str(trained_run), input=str(scans), output=str(tmp_path / f"both_{both}"), orientation_hypotheses=both,
                             fit=FitConfig(iterations=30), mesh=MeshConfig(resolution=16), progress=False)
        cfg.observe.num_surface = 300
        runs[both] = complete(cfg)["scans"]
    codes = {both: dict(zip(*(lambda z: (z["names"], z["codes"]))(np.load(tmp_path / f"both_{both}" / "latents.npz")))) for both in runs}
    for name, entry in runs[True].items():
        assert entry["normals"] == "estimated (gravity)" and entry["data_loss"] <= entry["data_loss_other_orientation"]
        alone = runs[False][name]
        assert "data_loss_other_orientation" not in alone and alone["normals_flipped"] is False
        if entry["normals_flipped"]:
            assert entry["data_loss"] < alone["data_loss"]
        else:  # the kept hypothesis is exactly the fit of the estimated normals alone
            np.testing.assert_allclose(codes[True][name], codes[False][name], atol=1e-5)


def test_normals_of_a_flat_cloud_do_not_crash_qhull():
    """Open3D's tangent-plane propagation raises a Qhull precision error on coplanar points (seen on
    a DVR table top); the fall-back orients each normal on its own."""
    from sdf_autodec.shapes.scans import estimate_normals

    rng = np.random.default_rng(3)
    top = np.column_stack([rng.uniform(-0.5, 0.5, 20000), np.full(20000, 0.3187589), rng.uniform(-0.4, 0.4, 20000)])
    for orient in ("centroid", "viewpoint"):
        normals = estimate_normals(top, 30, orient=orient)
        assert np.isfinite(normals).all() and np.allclose(np.abs(normals[:, 1]), 1.0, atol=1e-6)
