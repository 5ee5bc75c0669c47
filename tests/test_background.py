"""The rays a depth view saw nothing along: read from a virtual scan's depth, used as free space
(space carving), and scans with and without them completed in one batch."""

import numpy as np
import pytest
import trimesh

from data_prep.scanner import ScanConfig, random_camera, save_scan, scan_mesh
from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.geometry.analytic import sphere_sdf
from sdf_autodec.storage.layout import DatasetLayout, read_split
from sdf_autodec.shapes.complete import CompleteConfig, complete
from sdf_autodec.shapes.mesh import MeshConfig
from sdf_autodec.shapes.observations import ObservationConfig, observe
from sdf_autodec.shapes.scans import read_scan

RADIUS = 0.5


def _sphere_scan(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=4, radius=RADIUS)
    scan = scan_mesh(mesh, random_camera(ScanConfig(width=48, height=48), np.random.default_rng(3)))
    save_scan(tmp_path / "sphere.npz", scan)
    return scan, read_scan(tmp_path / "sphere.npz")


def test_background_rays_of_a_virtual_scan_miss_the_object(tmp_path):
    depth_scan, scan = _sphere_scan(tmp_path)
    assert len(scan.background) == int((~np.isfinite(depth_scan.depth)).sum()) > 0
    origin, direction = scan.background[:, :3], scan.background[:, 3:]
    np.testing.assert_allclose(origin, np.broadcast_to(depth_scan.camera.origin, origin.shape), atol=1e-6)
    # distance from the sphere's centre to each ray's line: every background ray passes outside it
    closest = origin - np.sum(origin * direction, axis=1, keepdims=True) * direction
    assert np.linalg.norm(closest, axis=1).min() > RADIUS * 0.98  # the icosphere's facets lie inside the sphere


def test_background_samples_are_free_space_inside_the_silhouette_sphere(tmp_path):
    _, scan = _sphere_scan(tmp_path)
    rng = np.random.default_rng(0)
    plain = observe(scan, ObservationConfig(num_surface=200), rng)
    carved = observe(scan, ObservationConfig(num_surface=200, background_per_point=2.0), np.random.default_rng(0))
    assert len(carved.targets) == len(plain.targets) + 400
    extra = carved.queries[-400:]
    assert carved.lower_bound[-400:].all() and (carved.targets[-400:] == 0).all()
    assert (sphere_sdf(extra, RADIUS) > 0).all()
    assert np.linalg.norm(extra, axis=1).max() <= 1.25 * np.linalg.norm(scan.points, axis=1).max() + 1e-6


def test_scans_with_and_without_camera_or_background_share_a_batch(trained_run, data_dir, tmp_path):
    layout = DatasetLayout(data_dir)
    scans = tmp_path / "scans"
    scans.mkdir()
    key = read_split(layout.split("test"))[0]
    with np.load(layout.scan(key, 0)) as z:
        points = z["points"]
        np.savez(scans / "with_camera.npz", **z)  # a virtual scan: camera and background from its depth
    np.savez(scans / "points_only.npz", points=points)  # the same points: no camera, no free space
    cfg = CompleteConfig(run=str(trained_run), input=str(scans), output=str(tmp_path / "out"), batch_size=2, references=False,
                         fit=FitConfig(iterations=10), observe=ObservationConfig(num_surface=200, background_per_point=1.0),
                         mesh=MeshConfig(resolution=16), progress=False)
    report = complete(cfg)["scans"]
    assert set(report) == {"with_camera", "points_only"} and all(e["status"] in ("ok", "no_surface") for e in report.values())
    alone = complete(CompleteConfig(**{**cfg.__dict__, "input": str(scans / "points_only.npz"), "output": str(tmp_path / "alone"), "batch_size": 1}))["scans"]
    assert alone["points_only"]["loss"] == pytest.approx(report["points_only"]["loss"], rel=1e-5)  # the padding weighs nothing
