"""The headless renderer, the `render` command and SDF slices, checked on analytic shapes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import trimesh

from sdf_autodec.shapes.pictures import RenderConfig, ViewConfig, render_inputs
from sdf_autodec.shapes.render import BACKGROUND, Camera, Framing, Mesh, Points, render, silhouette, vertex_normals
from sdf_autodec.shapes.slices import decoder_slice, plane_points, sample_slice, slices_figure


def _sphere(subdivisions: int = 5) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)


def test_sphere_silhouette_area_matches_the_pinhole_projection():
    size = 200
    cam = Camera.orbit(Framing(np.zeros(3), 1.0), azimuth=17, elevation=33)
    image = render([Mesh(_sphere().vertices, _sphere().faces)], cam, size)
    distance = np.linalg.norm(cam.eye)
    half = math.tan(math.radians(cam.fov_deg) / 2)
    radius_px = math.tan(math.asin(1 / distance)) / half * size / 2  # the sphere's image is a disc
    expected = math.pi * radius_px**2
    assert silhouette(image).sum() == pytest.approx(expected, rel=0.02)
    ys, xs = np.nonzero(silhouette(image))
    assert ys.mean() == pytest.approx(size / 2 - 0.5, abs=1.0) and xs.mean() == pytest.approx(size / 2 - 0.5, abs=1.0)


def test_sphere_shading_is_brightest_towards_the_light_and_symmetric():
    cam = Camera.orbit(Framing(np.zeros(3), 1.0), azimuth=0, elevation=0)
    image = render([Mesh(_sphere(6).vertices, _sphere(6).faces)], cam, 128).astype(float).mean(axis=2)
    inside = silhouette(render([Mesh(_sphere(6).vertices, _sphere(6).faces)], cam, 128))
    # the light comes from above-left of the camera: the upper-left quadrant is brighter than the lower-right
    h = 64
    upper_left = image[:h, :h][inside[:h, :h]].mean()
    lower_right = image[h:, h:][inside[h:, h:]].mean()
    assert upper_left > lower_right + 20
    # shading depends only on the normal: a sphere rotated about the view axis shades alike
    turned = trimesh.Trimesh(_sphere(6).vertices @ trimesh.transformations.rotation_matrix(1.0, [0, 0, 1])[:3, :3].T, _sphere(6).faces)
    again = render([Mesh(turned.vertices, turned.faces)], cam, 128).astype(float).mean(axis=2)
    assert np.abs(again - image)[inside].mean() < 2.0


def test_cube_shows_three_flat_faces_of_distinct_uniform_shades():
    box = trimesh.creation.box(extents=(1, 1, 1))
    cam = Camera.orbit(Framing(np.zeros(3), math.sqrt(3) / 2), azimuth=45, elevation=35)
    image = render([Mesh(box.vertices, box.faces)], cam, 160)
    # cast the camera's own rays at the analytic cube to find which face each pixel sees
    origins, dirs = cam.rays(160, 160)
    face = np.full(len(dirs), -1)
    t_best = np.full(len(dirs), np.inf)
    for axis in range(3):
        for sign in (-1, 1):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (sign * 0.5 - origins[:, axis]) / dirs[:, axis]
            p = origins + t[:, None] * dirs
            on = (t > 0) & (np.abs(np.delete(p, axis, axis=1)) <= 0.5 + 1e-9).all(axis=1) & (t < t_best)
            face[on], t_best[on] = axis * 2 + (sign > 0), t[on]
    face = face.reshape(160, 160)
    seen = [f for f in np.unique(face) if f >= 0]
    assert sorted(seen) == [1, 3, 5]  # +x, +y (top), +z faces from azimuth 45, elevation 35
    shades = {}
    for f in seen:
        pixels = image[face == f].astype(float)
        interior = pixels[np.abs(pixels - np.median(pixels, axis=0)).max(axis=1) < 40]
        assert len(interior) > 0.95 * len(pixels)  # flat face, one shade (but for the edges' pixels)
        shades[f] = np.median(pixels, axis=0)
    assert min(abs(shades[a].mean() - shades[b].mean()) for a in seen for b in seen if a < b) > 5
    assert (silhouette(image) == (face >= 0)).mean() > 0.995


def test_points_project_to_the_pixel_whose_ray_passes_through_them():
    cam = Camera.orbit(Framing(np.array([0.2, -0.1, 0.3]), 0.8), azimuth=70, elevation=-15)
    origins, dirs = cam.rays(64, 48)
    pick = np.array([5, 700, 1500, 3000])
    points = origins[pick] + dirs[pick] * np.array([[1.5], [2.0], [2.5], [3.0]])
    rows, cols, dist = cam.project(points, 64, 48)
    np.testing.assert_allclose(np.rint(rows) * 48 + np.rint(cols), pick)
    np.testing.assert_allclose(dist, [1.5, 2.0, 2.5, 3.0], rtol=1e-9)
    image = render([Points(points, (0.0, 0.0, 1.0), radius=0.5)], cam, (64, 48))
    drawn = np.flatnonzero(silhouette(image))
    assert set(drawn) == set(pick)


def test_points_behind_a_surface_are_hidden_and_in_front_are_drawn():
    sphere = _sphere()
    cam = Camera.orbit(Framing(np.zeros(3), 1.0), azimuth=0, elevation=0)
    front, back = np.array([[0.0, 0.0, 1.0]]), np.array([[0.0, 0.0, -1.0]])  # the near and far poles
    red = (1.0, 0.0, 0.0)
    with_front = render([Mesh(sphere.vertices, sphere.faces), Points(front, red, radius=8)], cam, 64)
    with_back = render([Mesh(sphere.vertices, sphere.faces), Points(back, red, radius=8)], cam, 64)
    pure_red = lambda img: ((img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)).sum()  # noqa: E731
    assert pure_red(with_front) >= 9  # radius 8 at 256² is 2 px at 64²: a disc of 13 pixels
    assert pure_red(with_back) == 0


def test_distance_colouring_is_zero_on_the_ground_truth_and_saturates_far_from_it():
    sphere = _sphere()
    cam = Camera.orbit(Framing(np.zeros(3), 1.3), azimuth=0, elevation=0)
    gt = _sphere(6).vertices
    near = render([Mesh(sphere.vertices, sphere.faces, distance_to=gt, max_distance=0.05)], cam, 64)
    far = render([Mesh(sphere.vertices * 1.3, sphere.faces, distance_to=gt, max_distance=0.05)], cam, 64)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    dark, yellow = np.array(cmap(0.0)[:3]), np.array(cmap(1.0)[:3])
    centre = lambda img: img[28:36, 28:36].reshape(-1, 3).astype(float) / 255  # noqa: E731
    # hue ratio independent of shading: green/blue of the colour map's ends
    assert (centre(near)[:, 2] > centre(near)[:, 1]).all() == (dark[2] > dark[1])
    assert (centre(far)[:, 1] > centre(far)[:, 2]).all() == (yellow[1] > yellow[2])


def test_vertex_normals_of_a_sphere_point_outwards():
    s = _sphere()
    n = vertex_normals(s.vertices, s.faces)
    np.testing.assert_allclose(n, s.vertices / np.linalg.norm(s.vertices, axis=1, keepdims=True), atol=5e-3)


def test_empty_scene_is_background():
    image = render([], Camera.orbit(Framing(np.zeros(3), 1.0)), 32)
    assert (image == np.asarray(BACKGROUND, dtype=np.uint8)).all()


# --- SDF slices -----------------------------------------------------------------------------------


class _SphereDecoder(torch.nn.Module):
    """SDF of a sphere whose radius is the code's first entry plus 0.5: ``f(z, q) = |q| - r``."""

    def forward(self, z, q):
        return (q.norm(dim=-1, keepdim=True) - (0.5 + z[:, None, :1])).to(q.dtype)


def test_decoder_slice_of_an_analytic_sphere_is_its_sdf():
    grid = decoder_slice(_SphereDecoder(), torch.tensor([0.1, 0.0]), "y", offset=0.2, resolution=33)
    pts = plane_points("y", 0.2, 33)
    np.testing.assert_allclose(grid.reshape(-1), np.linalg.norm(pts, axis=1) - 0.6, atol=1e-6)
    # row 0 is the bottom of the picture: the up coordinate of a y-plane is z, increasing with the row
    assert pts.reshape(33, 33, 3)[0, 0, 2] < pts.reshape(33, 33, 3)[-1, 0, 2]


def test_sample_slice_recovers_the_field_from_samples_near_the_plane():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (400_000, 3))
    samples = np.column_stack([pts, np.linalg.norm(pts, axis=1) - 0.6])
    grid = sample_slice(samples, "x", resolution=40, thickness=0.03)
    truth = np.linalg.norm(plane_points("x", 0.0, 40), axis=1).reshape(40, 40) - 0.6
    ok = np.isfinite(grid)
    assert ok.mean() > 0.95
    assert np.abs(grid[ok] - truth[ok]).max() < 0.08
    assert np.isnan(sample_slice(samples[:0], "x", resolution=8)).all()


def test_slices_figure_is_an_image():
    g = np.linalg.norm(plane_points("z", 0.0, 32), axis=1).reshape(32, 32) - 0.5
    image = slices_figure([("a", {"x": g, "y": g, "z": g}), ("b", {"x": g * np.nan, "z": g})], clamp=0.1)
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.std() > 10


# --- the render command -------------------------------------------------------------------------------


def test_render_command_draws_meshes_and_scans_and_reports_a_bad_mesh(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    _sphere(3).export(src / "ball.ply")
    trimesh.creation.box().export(src / "box.obj")
    (src / "broken.ply").write_text("ply\nformat ascii 1.0\nelement vertex 0\nend_header\n")
    out = tmp_path / "out"
    report = render_inputs(RenderConfig(input=str(src), output=str(out), view=ViewConfig(size=48, views=2), progress=False))
    assert report["shapes"]["ball"]["status"] == "ok" and report["shapes"]["box"]["status"] == "ok"
    assert report["shapes"]["broken"]["status"] == "ok" and "no triangles" in " ".join(report["shapes"]["broken"]["notes"])
    from PIL import Image

    ball = np.asarray(Image.open(out / "ball.png"))
    assert ball.shape[0] > 2 * 48 and silhouette(ball[..., :3]).sum() > 500  # two views stacked, something drawn
    assert json.loads((out / "render.json").read_text())["shapes"]["box"]["png"] == "box.png"
    scans = tmp_path / "scans"
    scans.mkdir()
    np.savez(scans / "half.npz", points=_sphere(4).vertices[_sphere(4).vertices[:, 2] > 0])
    r = render_inputs(RenderConfig(input=str(scans), output=str(tmp_path / "out2"), view=ViewConfig(size=32), progress=False))
    assert r["shapes"]["half"]["status"] == "ok"


def test_render_command_bad_input_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such mesh"):
        render_inputs(RenderConfig(input=str(tmp_path / "nope"), output=str(tmp_path / "o")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no meshes"):
        render_inputs(RenderConfig(input=str(tmp_path / "empty"), output=str(tmp_path / "o")))
