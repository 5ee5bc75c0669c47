"""shapes.clean: surface the SDF samples rule out, on analytic shapes (a sphere, a box)."""

import numpy as np
import pytest
import trimesh

from sdf_autodec.geometry.analytic import box_sdf, sphere_sdf
from sdf_autodec.shapes.clean import clean_mesh, ruled_out


def deepsdf_like_samples(sdf, n=40_000, seed=0):
    """``(n, 4)``: 19 in 20 near a sphere of radius 0.5 (the samples' surface), the rest uniform in the cube."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    near = 0.5 * d / np.linalg.norm(d, axis=1, keepdims=True) + rng.normal(scale=0.02, size=(n, 3))
    far = rng.uniform(-1, 1, size=(n // 20, 3))
    pts = np.concatenate([near[: n - n // 20], far])
    return np.concatenate([pts, sdf(pts)[:, None]], axis=1)


def test_ruled_out_is_a_subset_of_the_brute_force_test_and_never_marks_the_true_surface():
    samples = deepsdf_like_samples(sphere_sdf)
    true_surface = trimesh.creation.icosphere(subdivisions=3, radius=0.5).vertices
    assert not ruled_out(true_surface, samples, margin=0.01).any()
    rng = np.random.default_rng(1)
    queries = rng.uniform(-1, 1, size=(400, 3))
    fast = ruled_out(queries, samples, margin=0.05)
    slack = np.abs(samples[None, :, 3]) - np.linalg.norm(queries[:, None] - samples[None, :, :3], axis=2)
    naive = slack.max(axis=1) > 0.05
    assert not (fast & ~naive).any(), "a mark must be a proof"
    assert fast.sum() >= 0.9 * naive.sum()  # the nearest 32 samples find nearly every proof
    # and every marked point is truly that far from the sphere
    assert (np.abs(sphere_sdf(queries[fast])) > 0.05).all()


def test_components_drops_a_floater_and_keeps_the_shape():
    samples = deepsdf_like_samples(sphere_sdf)
    shape = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    floater = trimesh.creation.icosphere(subdivisions=2, radius=0.08)
    floater.apply_translation([0.8, 0.8, 0.8])
    mesh = trimesh.util.concatenate([shape, floater])
    cleaned, stats = clean_mesh(mesh, samples, margin=0.1, mode="components")
    assert stats["components_removed"] == 1 and stats["faces_removed"] == len(floater.faces)
    assert len(cleaned.faces) == len(shape.faces)
    assert np.allclose(np.sort(cleaned.vertices, axis=0), np.sort(shape.vertices, axis=0))
    assert stats["area_removed"] == pytest.approx(floater.area / mesh.area)
    assert len(mesh.faces) == len(shape.faces) + len(floater.faces)  # the input is left alone


def test_faces_removes_the_wrong_part_of_a_component_and_none_removes_nothing():
    # the samples are of a box; the mesh is the box with a long spike out of its top face
    samples = deepsdf_like_samples(lambda p: box_sdf(p, half_extents=(0.4, 0.3, 0.2)))
    mesh = trimesh.creation.box(extents=(0.8, 0.6, 0.4)).subdivide_to_size(0.04)
    v = mesh.vertices.copy()
    top = np.isclose(v[:, 2], 0.2) & (np.abs(v[:, 0]) < 0.15) & (np.abs(v[:, 1]) < 0.15)
    v[top, 2] = 0.2 + 0.6 * (1 - np.maximum(np.abs(v[top, 0]), np.abs(v[top, 1])) / 0.15)  # a pyramid 0.6 high
    mesh = trimesh.Trimesh(v, mesh.faces, process=False)
    faces, stats = clean_mesh(mesh, samples, margin=0.1, mode="faces")
    assert 0 < stats["area_removed"] < 0.5
    assert faces.vertices[:, 2].max() < 0.5  # the top of the spike is gone ...
    assert faces.triangles_center[:, 2].max() < 0.2 + 0.1 + 0.1  # ... and no face is left past the margin and an edge
    assert faces.area > 0.95 * trimesh.creation.box(extents=(0.8, 0.6, 0.4)).area  # the box is kept
    whole, stats = clean_mesh(mesh, samples, margin=0.1, mode="components")
    assert stats["faces_removed"] == 0  # one component, mostly right: kept
    assert clean_mesh(mesh, samples, 0.1, mode="none")[0] is mesh


def test_bad_mode_is_refused():
    with pytest.raises(ValueError, match="clean='holes'"):
        clean_mesh(trimesh.creation.box(), np.zeros((1, 4)), 0.1, mode="holes")
