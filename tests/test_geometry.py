"""Geometry layer: sign convention, normalisation, grids, analytic SDFs."""

import numpy as np
import pytest
import torch
import trimesh

from data_prep.raycast import raycasting_scene, signed_distance
from sdf_autodec.geometry.analytic import box_sdf, sphere_sdf
from sdf_autodec.geometry.grid import grid_axis, grid_points
from sdf_autodec.geometry.normalize import DEEPSDF_BUFFER, Normalization, deepsdf_normalization
from sdf_autodec.geometry.sign import TRIMESH_TO_SDF_SIGN


def test_open3d_sdf_matches_analytic_sphere():
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    pts = np.random.default_rng(0).uniform(-1, 1, (5000, 3))
    got = signed_distance(raycasting_scene(mesh), pts)
    want = sphere_sdf(pts, 0.5)
    assert np.all(np.sign(got[np.abs(want) > 0.01]) == np.sign(want[np.abs(want) > 0.01]))
    assert np.abs(got - want).max() < 0.01  # the polygonised sphere is within 1% of the true one


def test_open3d_sdf_matches_analytic_box():
    half = np.array([0.4, 0.3, 0.2])
    mesh = trimesh.creation.box(2 * half)
    pts = np.random.default_rng(1).uniform(-1, 1, (5000, 3))
    got = signed_distance(raycasting_scene(mesh), pts)
    np.testing.assert_allclose(got, box_sdf(pts, half), atol=1e-5)
    assert (got[np.all(np.abs(pts) < half, axis=1)] < 0).all()  # negative inside


def test_trimesh_sign_is_converted_by_the_one_constant():
    mesh = trimesh.creation.box((1, 1, 1))
    pts = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    ours = TRIMESH_TO_SDF_SIGN * trimesh.proximity.signed_distance(mesh, pts)
    np.testing.assert_allclose(ours, box_sdf(pts, (0.5, 0.5, 0.5)), atol=1e-6)


def test_torch_and_numpy_analytic_agree():
    pts = np.random.default_rng(2).normal(size=(100, 3))
    np.testing.assert_allclose(sphere_sdf(torch.from_numpy(pts)).numpy(), sphere_sdf(pts))
    np.testing.assert_allclose(box_sdf(torch.from_numpy(pts)).numpy(), box_sdf(pts))


def test_normalization_round_trip_and_unit_sphere():
    v = np.random.default_rng(3).normal(size=(500, 3)) * [3.0, 1.0, 0.2] + [10.0, -4.0, 2.0]
    norm = deepsdf_normalization(v)
    n = norm.apply(v)
    np.testing.assert_allclose(norm.invert(n), v, atol=1e-9)
    assert np.isclose(np.linalg.norm(n, axis=1).max(), 1 / DEEPSDF_BUFFER)
    np.testing.assert_allclose(0.5 * (n.min(0) + n.max(0)), 0.0, atol=1e-12)  # bounding-box centre at the origin
    assert np.allclose(norm.apply(v), (v + norm.offset) * norm.scale)


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.array([[0.0, np.nan, 0.0]]), np.ones((4, 3))])
def test_normalization_rejects_degenerate_input(bad):
    with pytest.raises(ValueError):
        deepsdf_normalization(bad)


def test_grid_hits_both_corners_exactly():
    axis = grid_axis(256)
    assert axis[0] == -1.0 and axis[-1] == 1.0  # DeepSDF's grid ends at 1.0078
    pts = grid_points(5)
    assert pts.shape == (125, 3)
    assert torch.equal(pts[0], torch.tensor([-1.0, -1.0, -1.0])) and torch.equal(pts[-1], torch.tensor([1.0, 1.0, 1.0]))
    assert torch.equal(pts[1], torch.tensor([-1.0, -1.0, -0.5]))  # z fastest (ij order)


def test_normalization_dataclass_is_plain():
    n = Normalization(offset=np.zeros(3), scale=2.0)
    np.testing.assert_allclose(n.apply(np.ones((1, 3))), 2.0)


def test_unit_cube_normalization_is_the_dvr_frame():
    from sdf_autodec.geometry.normalize import normalization

    v = np.random.default_rng(0).uniform([-3, 1, 2], [5, 2, 4], (500, 3))
    norm = normalization(v, "unit_cube")
    n = norm.apply(v)
    assert np.allclose(n.max(axis=0) + n.min(axis=0), 0) and np.isclose((n.max(axis=0) - n.min(axis=0)).max(), 1.0)
    assert np.allclose(norm.invert(n), v)
    with pytest.raises(ValueError, match="normalization must be one of"):
        normalization(v, "sphere")


def test_atomic_write_gives_the_permissions_open_would(tmp_path):
    import os
    import stat

    from sdf_autodec.atomic import atomic_write

    atomic_write(tmp_path / "a.txt", lambda tmp: open(tmp, "w").write("x"))
    (tmp_path / "b.txt").write_text("x")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.txt")


def test_remove_temporaries_clears_what_a_killed_write_left_and_nothing_else(tmp_path):
    import os
    import tempfile

    from sdf_autodec.atomic import remove_temporaries

    fd, mine = tempfile.mkstemp(prefix=".m2.", suffix=".tmp.ply", dir=tmp_path)  # atomic_write's naming
    os.close(fd)
    fd, other = tempfile.mkstemp(prefix=".m22.", suffix=".tmp.ply", dir=tmp_path)
    os.close(fd)
    (tmp_path / "m2.ply").write_text("done")
    remove_temporaries(tmp_path / "m2.ply")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([os.path.basename(other), "m2.ply"])
