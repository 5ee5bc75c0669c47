"""data_prep: loading, sampling counts and proportions, the layout written, bad input."""

import json

import numpy as np
import pytest
import trimesh

from data_prep.mesh_io import MeshError, load_mesh
from data_prep.crawl import crawl_meshes
from data_prep.prep import PrepConfig, prep_dataset, split_keys
from data_prep.sampling import SampleConfig, sample_shape
from data_prep.scanner import ScanConfig, random_camera, scan_mesh
from sdf_autodec.geometry.analytic import sphere_sdf
from sdf_autodec.storage.layout import DatasetLayout, ShapeKey, read_normalization, read_sdf_samples, read_split


def test_sample_counts_and_proportions():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    cfg = SampleConfig(num_samples=10_000)
    samples = sample_shape(mesh, cfg, np.random.default_rng(0))
    points, sdf = samples.points, samples.sdf
    assert points.shape == (10_000, 3) and sdf.shape == (10_000,)  # a sphere: every sign is sure
    assert samples.qa["sign_method"] == "pseudonormal" and samples.qa["dropped_fraction"] == 0.0
    near, uniform = points[:9400], points[9400:]  # DeepSDF: 47/50 near the surface
    assert np.abs(np.linalg.norm(near, axis=1) - 0.5).mean() < 0.1
    assert np.abs(uniform).max() <= 1.0 and np.abs(uniform).mean() > 0.4
    # the two noise scales: half of the near samples are tight (std 0.022), half wide (std 0.071)
    tight, wide = near[4700:], near[:4700]
    assert np.std(np.linalg.norm(tight, axis=1) - 0.5) < 0.035 < np.std(np.linalg.norm(wide, axis=1) - 0.5)
    assert np.abs(sdf - sphere_sdf(points, 0.5)).max() < 0.01


def test_sampling_is_deterministic_by_seed():
    mesh = trimesh.creation.box((1, 1, 1))
    cfg = SampleConfig(num_samples=1000)
    a = sample_shape(mesh, cfg, np.random.default_rng(5))
    b = sample_shape(mesh, cfg, np.random.default_rng(5))
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.sdf, b.sdf)


def test_prep_writes_the_deepsdf_layout(data_dir, mesh_dir):
    layout = DatasetLayout(data_dir)
    keys = layout.sdf_keys()
    assert {k.id for k in keys} == {"ball", "pill", "brick", "post"}  # source stems are the shape ids
    assert {k.cls for k in keys} == {"round", "boxy"} and {k.dataset for k in keys} == {"tiny"}
    for key in keys:
        pos, neg = read_sdf_samples(layout.sdf(key))
        assert pos.dtype == np.float32 and (pos[:, 3] > 0).all() and (neg[:, 3] <= 0).all()
        assert len(pos) + len(neg) == 4000
        norm = read_normalization(layout.normalization(key))
        assert layout.surface(key).is_file() and layout.scan(key, 0).is_file()
        # surface samples are in the source frame: normalised they lie on the unit-sphere-scaled shape
        cloud = trimesh.load(layout.surface(key))
        assert np.linalg.norm(norm.apply(cloud.vertices), axis=1).max() <= 1 / 1.03 + 1e-6
    split_all = read_split(layout.split("all"))
    train, test = read_split(layout.split("train")), read_split(layout.split("test"))
    assert sorted(split_all, key=str) == sorted(train + test, key=str) and len(test) == 2
    raw = json.loads(layout.split("all").read_text())
    assert set(raw) == {"tiny"} and set(raw["tiny"]) == {"round", "boxy"}


def test_prep_resumes_without_redoing(data_dir, mesh_dir):
    before = {p: p.stat().st_mtime_ns for p in (data_dir / "SdfSamples").rglob("*.npz")}
    cfg = PrepConfig(input=str(mesh_dir), output=str(data_dir), dataset="tiny", samples=SampleConfig(num_samples=4000, surface_points=2000), test_fraction=0.5, workers=1)
    report = prep_dataset(cfg)
    assert sorted(report.skipped) == sorted(report.ok) and len(report.ok) == 4
    assert before == {p: p.stat().st_mtime_ns for p in (data_dir / "SdfSamples").rglob("*.npz")}


def test_bad_meshes_are_named_skipped_and_recorded(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    trimesh.creation.box((1, 1, 1)).export(src / "good.obj")
    (src / "garbage.obj").write_text("this is not a mesh\n")
    (src / "empty.off").write_text("OFF\n0 0 0\n")
    (src / "nan.off").write_text("OFF\n3 1 0\n0 0 0\nnan 1 0\n0 0 1\n3 0 1 2\n")
    (src / "nofaces.off").write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    (src / "truncated.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 100\n")
    out = tmp_path / "out"
    report = prep_dataset(PrepConfig(input=str(src), output=str(out), samples=SampleConfig(num_samples=500, surface_points=100), workers=1))
    assert report.ok == ["in/good"]
    assert set(report.failed) == {"in/garbage", "in/empty", "in/nan", "in/nofaces", "in/truncated"}
    for name, reason in report.failed.items():
        assert name.split("/")[1] in reason  # the reason names the file
    assert "NaN" in report.failed["in/nan"] and "no faces" in report.failed["in/nofaces"]
    manifest = json.loads((out / "manifest.json").read_text())["shapes"]
    assert manifest["in/good"]["status"] == "ok" and manifest["in/nan"]["status"] == "failed"
    assert not list(out.rglob("*.tmp*"))  # nothing half-written left behind


def test_load_mesh_errors_name_the_file(tmp_path):
    with pytest.raises(MeshError, match="missing.obj: file not found"):
        load_mesh(tmp_path / "missing.obj")
    strips = tmp_path / "strips.ply"
    strips.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                       b"element tristrips 1\nproperty list int int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(MeshError, match="strips.ply: the PLY stores triangle strips"):
        load_mesh(strips)


def test_multi_object_scene_is_merged(tmp_path):
    scene = trimesh.Scene([trimesh.creation.box((1, 1, 1)), trimesh.creation.icosphere().apply_translation([3, 0, 0])])
    scene.export(tmp_path / "two.glb")
    mesh = load_mesh(tmp_path / "two.glb")
    assert len(mesh.split(only_watertight=False)) == 2


def test_crawl_flat_and_class_folders(tmp_path):
    (tmp_path / "flat").mkdir()
    trimesh.creation.box().export(tmp_path / "flat" / "a.obj")
    assert [(m.cls, m.id, m.path.name) for m in crawl_meshes(tmp_path / "flat")] == [("flat", "a", "a.obj")]


def test_split_is_per_class_and_deterministic():
    keys = [ShapeKey("d", c, f"{c}{i}") for c in ("a", "b") for i in range(10)]
    train, test = split_keys(keys, 0.2, seed=0)
    assert len(test) == 4 and {k.cls for k in test} == {"a", "b"}
    assert split_keys(keys, 0.2, seed=0) == (train, test)


def test_virtual_scan_sees_only_the_front():
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    cam = random_camera(ScanConfig(), np.random.default_rng(0))
    scan = scan_mesh(mesh, cam)
    assert len(scan.points) > 1000
    assert np.abs(np.linalg.norm(scan.points, axis=1) - 0.5).max() < 0.01  # on the surface
    to_cam = cam.origin / np.linalg.norm(cam.origin)
    assert (scan.points @ to_cam > -0.05).all()  # the far side is hidden
    finite = np.isfinite(scan.depth)
    assert finite.sum() == len(scan.points) and (scan.depth[finite] > 0).all()


def test_fast_off_reader_matches_trimesh_and_falls_back(tmp_path):
    from data_prep.mesh_io import _read_triangle_off, load_mesh

    box = trimesh.creation.box((1.0, 2.0, 3.0))
    body = "\n".join(" ".join(f"{x:.6f}" for x in v) for v in box.vertices) + "\n" + "\n".join(f"3 {a} {b} {c}" for a, b, c in box.faces) + "\n"
    plain = tmp_path / "plain.off"
    plain.write_text(f"OFF\n{len(box.vertices)} {len(box.faces)} 0\n" + body)
    joined = tmp_path / "joined.off"  # ModelNet's header quirk
    joined.write_text(f"OFF{len(box.vertices)} {len(box.faces)} 0\n" + body)
    for path in (plain, joined):
        assert _read_triangle_off(path) is not None
        fast, slow = load_mesh(path), trimesh.load(path, force="mesh", process=False)
        np.testing.assert_allclose(fast.vertices, slow.vertices)
        np.testing.assert_array_equal(fast.faces, slow.faces)
    quads = tmp_path / "quads.off"
    quads.write_text("OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
    assert _read_triangle_off(quads) is None and len(load_mesh(quads).faces) == 2  # trimesh triangulates it
    commented = tmp_path / "commented.off"
    commented.write_text("OFF\n# a comment\n" + f"{len(box.vertices)} {len(box.faces)} 0\n" + body)
    assert _read_triangle_off(commented) is None and len(load_mesh(commented).faces) == 12
