"""Metrics on known geometry: analytic Chamfer, accuracy percentile, completion, IoU (holes,
offsets, orientation), the oriented-cloud inside test, normal orientation, the observed/unobserved
split, and ``sdf-autodec eval`` end to end with its CSV."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from sdf_autodec.storage.layout import DatasetError, write_normalization
from sdf_autodec.geometry.normalize import deepsdf_normalization, normalization
from sdf_autodec.geometry.surface import inside_mesh, inside_points, mesh_distance, orient_normals, winding_number_points
from sdf_autodec.optional import open3d
from sdf_autodec.shapes.evaluate import EvalConfig, evaluate
from sdf_autodec.shapes.metrics import mesh_accuracy, mesh_completion, mesh_iou, mesh_metrics, observed_mask, part_metrics, point_metrics

DVR_TABLES = Path(__file__).resolve().parents[1].parent / "shared/data/scans/dvr_tables"


def fibonacci_sphere(count: int, radius: float) -> np.ndarray:
    """``count`` evenly spread points on a sphere, ``(count, 3)``; their outward normals are ``p / radius``."""
    i = np.arange(count) + 0.5
    z = 1 - 2 * i / count
    phi = np.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z**2)
    return radius * np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def sphere(radius: float, subdivisions: int = 5) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)


def without_faces(mesh: trimesh.Trimesh, drop: np.ndarray) -> trimesh.Trimesh:
    keep = np.setdiff1d(np.arange(len(mesh.faces)), drop)
    return trimesh.Trimesh(mesh.vertices, mesh.faces[keep], process=False)


def upper_half(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    return without_faces(mesh, np.flatnonzero(mesh.triangles_center[:, 2] < 0))


def square(z: float, x: tuple[float, float], y: tuple[float, float]) -> trimesh.Trimesh:
    v = np.array([[x[0], y[0], z], [x[1], y[0], z], [x[1], y[1], z], [x[0], y[1], z]])
    return trimesh.Trimesh(v, [[0, 1, 2], [0, 2, 3]], process=False)


# --- point and mesh metrics on known sets ----------------------------------------------------------


def test_chamfer_of_concentric_spheres_is_analytic():
    inner, outer = fibonacci_sphere(20_000, 0.5), fibonacci_sphere(20_000, 0.6)
    m = point_metrics(outer, inner)
    # every nearest neighbour is (almost exactly) the radial one, 0.1 away, both ways
    assert m["chamfer"] == pytest.approx(2 * 0.1**2, rel=0.01)
    assert m["chamfer_l1"] == pytest.approx(0.1, rel=0.01)
    assert m["fscore@2%"] == 0.0  # 2% of the diagonal (sqrt(3)) is 0.035 < 0.1


def test_accuracy_and_completion_of_a_slightly_larger_sphere():
    gt = sphere(0.5)
    gt_points = fibonacci_sphere(20_000, 0.5)
    for radius, completion in ((0.505, 1.0), (0.52, 0.0)):
        m = mesh_metrics(sphere(radius), gt_points, num_points=20_000, gt_mesh=gt)
        assert m["mesh_accuracy"] == pytest.approx(radius - 0.5, abs=5e-4)  # exact distances to the GT mesh
        assert m["mesh_completion"] == completion  # every GT point is 0.005 (within 0.01) or 0.02 (beyond) away
    # against the GT samples instead of its mesh: their spacing (~0.006) adds to the distance to the
    # nearest sample; the discs of the oriented samples do not have that bias
    assert 0.021 < mesh_metrics(sphere(0.52), gt_points, num_points=20_000)["mesh_accuracy"] < 0.0225
    assert mesh_metrics(sphere(0.52), gt_points, gt_points / 0.5, num_points=20_000)["mesh_accuracy"] == pytest.approx(0.02, abs=5e-4)
    assert mesh_metrics(sphere(0.5), gt_points, gt_points / 0.5, num_points=20_000)["mesh_accuracy"] < 5e-4


def test_accuracy_is_the_90th_percentile_of_pred_to_gt_distances():
    assert mesh_accuracy(np.arange(1, 101) / 100.0) == pytest.approx(0.901)
    ground = square(0.0, (-1, 2), (-1, 2))
    near = square(0.003, (0, 1), (0, 1))  # area 1, 0.003 from the ground truth
    for far_area, expected in ((0.25, 0.1), (0.05, 0.003)):  # 20% vs under 5% of the prediction 0.1 away
        far = square(0.1, (0, far_area / 0.5), (0, 0.5))
        pred = trimesh.util.concatenate([near, far])
        m = mesh_metrics(pred, trimesh.sample.sample_surface(ground, 20_000, seed=np.random.default_rng(0))[0], gt_mesh=ground)
        assert m["mesh_accuracy"] == pytest.approx(expected, abs=1e-6)


def test_completion_of_half_a_sphere():
    gt_points = fibonacci_sphere(20_000, 0.5)
    m = mesh_metrics(upper_half(sphere(0.5)), gt_points, num_points=20_000)
    # the upper half, plus the band within 0.01 below its rim: 0.5 + 0.01 / (2 * 0.5)
    assert m["mesh_completion"] == pytest.approx(0.51, abs=0.005)
    assert mesh_completion(np.array([0.0, 0.009, 0.011, 1.0]), 0.01) == 0.5


# --- inside tests and IoU --------------------------------------------------------------------------


def test_iou_of_a_box_with_itself_and_of_an_inverted_box():
    box = trimesh.creation.box((1.0, 0.6, 0.4))
    assert mesh_iou(box, box.vertices, gt_mesh=box, count=20_000) == 1.0
    inverted = trimesh.Trimesh(box.vertices, box.faces[:, ::-1], process=False)
    assert mesh_iou(inverted, box.vertices, gt_mesh=box, count=20_000) == 1.0


def test_iou_against_a_box_with_a_hole_is_one():
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    holed = without_faces(box, np.flatnonzero(box.face_normals[:, 2] > 0.5))  # the whole top face is missing
    assert not holed.is_watertight
    assert mesh_iou(box, holed.vertices, gt_mesh=holed, count=50_000) > 0.999
    # the same holed box given as an oriented cloud, as the ground truth usually is
    points, face = trimesh.sample.sample_surface(holed, 10_000, seed=np.random.default_rng(0))
    assert mesh_iou(box, points, holed.face_normals[face], count=30_000) > 0.97
    # a hole in the prediction too (marching cubes cut at the grid's border)
    assert mesh_iou(holed, points, holed.face_normals[face], count=30_000) > 0.97


def test_iou_of_two_offset_boxes_is_analytic():
    a = trimesh.creation.box((1.0, 1.0, 1.0))
    b = a.copy().apply_translation((0.5, 0.0, 0.0))
    assert mesh_iou(b, a.vertices, gt_mesh=a, count=100_000) == pytest.approx(1 / 3, abs=0.01)
    c = a.copy().apply_translation((0.25, 0.25, 0.0))  # overlap 0.75 * 0.75, union 2 - overlap
    points, face = trimesh.sample.sample_surface(a, 10_000, seed=np.random.default_rng(1))
    assert mesh_iou(c, points, a.face_normals[face], count=50_000) == pytest.approx(0.5625 / 1.4375, abs=0.015)


def test_mesh_iou_needs_normals_or_a_mesh():
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="normals"):
        mesh_iou(box, box.vertices)


def test_oriented_cloud_inside_test_on_a_sphere():
    points = fibonacci_sphere(10_000, 0.5)
    queries = np.random.default_rng(0).uniform(-0.7, 0.7, size=(30_000, 3))
    r = np.linalg.norm(queries, axis=1)
    inside = inside_points(points, points / 0.5, queries)
    assert np.array_equal(inside[np.abs(r - 0.5) > 0.01], r[np.abs(r - 0.5) > 0.01] < 0.5)
    assert np.mean(inside != (r < 0.5)) < 0.002
    # inward normals turn it inside out: the test really reads the normals
    assert not inside_points(points, -points / 0.5, queries)[r < 0.49].any()


def test_thin_plate_inside_test_uses_the_near_field_vote():
    plate = trimesh.creation.box((1.0, 1.0, 0.01))  # about as thin as the sample spacing (~0.01)
    points, face = trimesh.sample.sample_surface(plate, 15_000, seed=np.random.default_rng(0))
    normals = plate.face_normals[face]
    queries = np.random.default_rng(1).uniform([-0.55, -0.55, -0.01], [0.55, 0.55, 0.01], size=(30_000, 3))
    truth = (np.abs(queries) <= [0.5, 0.5, 0.005]).all(axis=1)
    iou = lambda inside: np.count_nonzero(inside & truth) / np.count_nonzero(inside | truth)  # noqa: E731
    assert iou(inside_points(points, normals, queries)) > 0.9
    assert iou(winding_number_points(points, normals, queries) > 0.5) < 0.6  # the dipole sum alone fails here
    assert np.array_equal(inside_mesh(plate.vertices, plate.faces, queries), truth)


def test_mesh_distance_is_exact_on_a_square():
    q = np.array([[0.5, 0.5, 0.3], [2.0, 0.5, 0.0], [0.2, 0.7, -0.1]])
    unit = square(0.0, (0, 1), (0, 1))
    np.testing.assert_allclose(mesh_distance(unit.vertices, unit.faces, q), [0.3, 1.0, 0.1])


@pytest.mark.parametrize("thickness", [0.3, 0.012])
def test_orient_normals_of_a_closed_surface(thickness):
    part = trimesh.creation.box((1.0, thickness, 0.6))
    points, face = trimesh.sample.sample_surface(part, 40_000, seed=np.random.default_rng(0))
    outward = part.face_normals[face]
    flip = np.random.default_rng(1).random(len(points)) < 0.5
    oriented, unknown = orient_normals(points, np.where(flip[:, None], -outward, outward))
    correct = np.sum(oriented * outward, axis=1) > 0
    assert correct.mean() > 0.98 and unknown.mean() < 0.01
    # the inside test on the re-oriented cloud matches the mesh's
    queries = np.random.default_rng(2).uniform(-0.6, 0.6, size=(20_000, 3)) * [1, thickness + 0.05, 1]
    agree = inside_points(points, oriented, queries) == inside_mesh(part.vertices, part.faces, queries)
    assert agree.mean() > 0.98


@pytest.mark.skipif(not DVR_TABLES.is_dir(), reason=f"real DVR data not present at {DVR_TABLES}")
def test_orient_normals_of_a_real_dvr_cloud_faces_the_cameras():
    pytest.importorskip("OpenEXR")
    from scipy.spatial import cKDTree

    from data_prep.dvr import load_dvr_ground_truth, load_dvr_views
    from sdf_autodec.geometry.surface import deduplicate

    obj = DVR_TABLES / "1a00aa6b75362cc5b324368d54a7416f"
    points, normals = deduplicate(*load_dvr_ground_truth(obj))
    oriented, _ = orient_normals(points, normals)
    tree = cKDTree(points)
    facing, stored = [], []
    for scan in load_dvr_views(obj, [0, 4, 8, 12, 16, 20]):
        d, j = tree.query(scan.points.astype(np.float64))
        j = j[d < 0.003]
        to_camera = (scan.camera.origin - points[j]) / np.linalg.norm(scan.camera.origin - points[j], axis=1, keepdims=True)
        cos, cos_stored = np.sum(oriented[j] * to_camera, axis=1), np.sum(normals[j] * to_camera, axis=1)
        facing.append(cos[np.abs(cos) > 0.3] > 0)  # a surface seen by a camera faces it
        stored.append(cos_stored[np.abs(cos_stored) > 0.3] > 0)
    facing, stored = np.concatenate(facing), np.concatenate(stored)
    assert len(facing) > 10_000 and facing.mean() > 0.97
    assert 0.3 < stored.mean() < 0.7  # the stored signs are arbitrary


# --- observed / unobserved split -------------------------------------------------------------------


def test_split_on_a_half_observed_sphere():
    gt_points = fibonacci_sphere(20_000, 0.5)
    scan = fibonacci_sphere(30_000, 0.5)
    scan = scan[scan[:, 2] > 0]  # a scan of the upper half, denser than the 0.02 radius
    observed = observed_mask(gt_points, scan, radius=0.02)
    assert 0.51 < observed.mean() < 0.52  # the half, plus a band below it (up to 0.02 / (2 * 0.5) of the sphere)
    m = mesh_metrics(upper_half(sphere(0.5)), gt_points, num_points=20_000, scan_points=scan)
    assert m["observed_fraction"] == pytest.approx(observed.mean())
    assert m["observed.completion"] > 0.99 and m["observed.recall@1%"] > 0.99  # all but the band below the rim
    assert m["unobserved.completion"] < 0.01 and m["unobserved.recall@1%"] < 0.01  # the mesh's rim dips a little below z = 0
    assert m["unobserved.chamfer_l1_gt_to_pred"] > 0.1 > m["observed.chamfer_l1_gt_to_pred"]
    # an observed part that the scan covers entirely has no unobserved keys
    full = mesh_metrics(sphere(0.5), gt_points, num_points=5_000, scan_points=gt_points)
    assert full["observed_fraction"] == 1.0 and not any(k.startswith("unobserved.") for k in full)


def test_split_parts_add_up_to_the_whole():
    rng = np.random.default_rng(0)
    d_points, d_mesh = rng.exponential(0.01, 1000), rng.exponential(0.01, 1000)
    observed = rng.random(1000) < 0.3
    m = part_metrics(d_points, d_mesh, observed, completion_threshold=0.01, scale=1.0)
    f = m["observed_fraction"]
    assert f * m["observed.chamfer_gt_to_pred"] + (1 - f) * m["unobserved.chamfer_gt_to_pred"] == pytest.approx(np.mean(d_points**2))
    assert f * m["observed.completion"] + (1 - f) * m["unobserved.completion"] == pytest.approx(mesh_completion(d_mesh, 0.01))


# --- sdf-autodec eval ------------------------------------------------------------------------------


def box_cloud(extents, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    box = trimesh.creation.box(extents)
    points, face = trimesh.sample.sample_surface(box, count, seed=np.random.default_rng(seed))
    return points, box.face_normals[face]


def write_dvr_fixture(root: Path) -> Path:
    """Two DVR-style shapes (float16 clouds, normals with random signs, [-0.5, 0.5] frame), a folder
    of predictions (one exact, one shifted) and a folder of half scans."""
    rng = np.random.default_rng(0)
    for i, extents in enumerate(((1.0, 0.4, 0.6), (0.5, 1.0, 0.5))):
        points, normals = box_cloud(extents, 10_000, i)
        normals = np.where(rng.random(len(normals))[:, None] < 0.5, -normals, normals)
        (root / "gt" / f"shape{i}").mkdir(parents=True)
        np.savez(root / "gt" / f"shape{i}" / "pointcloud.npz", points=points.astype(np.float16), normals=normals.astype(np.float16), loc=np.zeros(3), scale=np.float16(1))
        (root / "pred").mkdir(exist_ok=True)
        trimesh.creation.box(extents).apply_translation((0.1 * i, 0, 0)).export(root / "pred" / f"shape{i}.ply")
        (root / "scans").mkdir(exist_ok=True)
        np.savez(root / "scans" / f"shape{i}.npz", points=points[points[:, 0] > 0].astype(np.float32))
    return root


def test_eval_command_on_dvr_clouds_writes_json_and_csv(tmp_path):
    root = write_dvr_fixture(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "sdf_autodec.cli.main", "eval", f"pred={root / 'pred'}", f"gt={root / 'gt'}", f"output={root / 'm.json'}",
         f"scans={root / 'scans'}", "num_points=5000", "iou_points=10000", "progress=false"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "IoU" in out.stdout and "m.json" in out.stdout
    result = json.loads((root / "m.json").read_text())
    assert result["protocol"]["gt_format"] == "dvr" and result["protocol"]["pred_frame"] == "source"
    exact, shifted = result["shapes"]["shape0"], result["shapes"]["shape1"]
    assert exact["iou"] > 0.97 and exact["mesh_completion"] > 0.99 and exact["fscore@2%"] > 0.9
    assert shifted["iou"] == pytest.approx(0.4 / 0.6, abs=0.03)  # 0.5-wide box shifted by 0.1
    assert 0.4 < exact["observed_fraction"] < 0.7 and exact["observed.completion"] > 0.99
    with open(root / "m.csv", newline="") as f:
        every = list(csv.DictReader(f))
    rows = [r for r in every if r["method"] == "ours"]
    assert [r["mesh"] for r in rows] == ["shape0", "shape1", "mean", "median"]
    assert {r["method"] for r in every} == {"ours", "scan"}  # with scans= the scan itself is scored too (no report: no other reference)
    assert result["methods"]["scan"]["shapes"]["shape0"]["chamfer"] > exact["chamfer"]  # half a box is not a box
    assert {"iou", "mesh_accuracy", "mesh_completion", "chamfer_x1000", "observed.completion", "unobserved.recall@1%"} <= set(rows[0])
    for name, value in result["mean"].items():
        assert float(rows[2][name]) == pytest.approx(value)
    assert float(rows[0]["iou"]) == pytest.approx(exact["iou"])


def write_data_fixture(root: Path, convention: str = "deepsdf") -> Path:
    """A prepared-data-directory ground truth written by hand: one box in a source frame far from
    the unit sphere, with its normalisation (``convention``, recorded in the manifest as prep does),
    and a predicted mesh, shifted by 0.1 in the source frame, in the model's (normalised) frame."""
    box = trimesh.creation.box((4.0, 2.0, 3.0)).apply_translation((10.0, -5.0, 2.0))
    points, face = trimesh.sample.sample_surface(box, 20_000, seed=np.random.default_rng(0))
    o3d = open3d()
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.normals = o3d.utility.Vector3dVector(box.face_normals[face])
    (root / "data" / "SurfaceSamples" / "t" / "boxes").mkdir(parents=True)
    o3d.io.write_point_cloud(str(root / "data" / "SurfaceSamples" / "t" / "boxes" / "b.ply"), cloud)
    norm = normalization(box.vertices, convention)
    write_normalization(root / "data" / "NormalizationParameters" / "t" / "boxes" / "b.npz", norm)
    (root / "data" / "manifest.json").write_text(json.dumps({"version": 1, "config": {"normalization": convention}, "shapes": {}}))
    (root / "pred").mkdir()
    trimesh.Trimesh(norm.apply(box.vertices + [0.1, 0, 0]), box.faces).export(root / "pred" / "b_v00.ply")
    return root


def test_eval_frames_give_the_same_scale_free_numbers(tmp_path):
    root = write_data_fixture(tmp_path)
    common = dict(pred=str(root / "pred"), gt=str(root / "data"), num_points=5000, iou_points=20_000, progress=False)
    a = evaluate(EvalConfig(output=str(root / "a.json"), **common))["shapes"]["b_v00"]
    b = evaluate(EvalConfig(output=str(root / "b.json"), frame="source", **common))["shapes"]["b_v00"]
    assert a["shape"] == "b" and a["class"] == "boxes"
    assert a["iou"] == pytest.approx((3.9 * 2 * 3) / (4.1 * 2 * 3), abs=0.02)
    for name in ("iou", "mesh_completion", "fscore@1%", "fscore@2%", "normal_consistency"):
        assert a[name] == pytest.approx(b[name], abs=1e-6), name
    scale = deepsdf_normalization(trimesh.creation.box((4.0, 2.0, 3.0)).vertices).scale
    assert a["mesh_accuracy"] == pytest.approx(b["mesh_accuracy"] * scale, rel=1e-6)
    assert a["chamfer"] == pytest.approx(b["chamfer"] * scale**2, rel=1e-6)
    assert (root / "a.csv").is_file() and (root / "b.csv").is_file()
    # a model in the unit cube (prep normalization=unit_cube) is still scored in the unit sphere
    cube = write_data_fixture(tmp_path / "cube", "unit_cube")
    c = evaluate(EvalConfig(output=str(cube / "c.json"), **{**common, "pred": str(cube / "pred"), "gt": str(cube / "data")}))["shapes"]["b_v00"]
    assert c["iou"] == pytest.approx(a["iou"], abs=1e-6) and c["fscore@1%"] == pytest.approx(a["fscore@1%"], abs=1e-6)
    assert c["chamfer"] == pytest.approx(a["chamfer"], rel=0.03)  # unit sphere from the samples, not the vertices


def test_eval_rejects_an_unknown_ground_truth_and_a_csv_output(tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    with pytest.raises(DatasetError, match="neither a prepared data directory"):
        evaluate(EvalConfig(pred=str(tmp_path / "pred"), gt=str(tmp_path / "gt"), output=str(tmp_path / "m.json")))
    with pytest.raises(ValueError, match="JSON path"):
        evaluate(EvalConfig(pred=str(tmp_path / "pred"), gt=str(tmp_path / "gt"), output=str(tmp_path / "m.csv")))
