"""Mirror symmetry in completion observations (``ObservationConfig.symmetry``)."""

import numpy as np
import pytest
import trimesh

from data_prep.scanner import Camera, look_at, scan_mesh
from sdf_autodec.shapes.metrics import point_metrics
from sdf_autodec.shapes.observations import ObservationConfig, mirror_consistent, observe
from sdf_autodec.shapes.scans import PartialScan


def scan(mesh: trimesh.Trimesh, eye) -> PartialScan:
    focal = 0.5 * 240 / np.tan(np.deg2rad(25))
    camera = Camera(np.array([[focal, 0, 120], [0, focal, 120], [0, 0, 1.0]]), look_at(np.asarray(eye, float), np.zeros(3), np.array([0, 1.0, 0])), 240, 240)
    points = scan_mesh(mesh, camera).points.astype(np.float64)
    return PartialScan("s", points, camera.origin)


def surface_points(obs):
    """The zero-level queries of an observation set (observed and mirrored), with their weights."""
    zero = (obs.targets == 0) & ~obs.lower_bound
    return obs.queries[zero], obs.weights[zero]


def test_mirroring_a_half_scan_of_a_symmetric_shape_recovers_the_whole():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    half = scan(sphere, (2.5, 0.0, 0.0))  # sees the x > 0 hemisphere only
    truth = trimesh.sample.sample_surface(sphere, 20_000, seed=0)[0]
    cfg = ObservationConfig(num_surface=3000, free_space_per_point=0.0, symmetry="canonical")
    obs = observe(half, cfg, np.random.default_rng(0))
    points, weights = surface_points(obs)
    observed, mirrored = points[weights == 1], points[weights == cfg.symmetry_weight]
    assert len(mirrored) == len(observed) == 3000  # nothing the camera saw contradicts the mirror image
    alone = point_metrics(observed, truth)["chamfer"]
    both = point_metrics(points, truth)["chamfer"]
    # the other hemisphere is covered too; what is left is the band around the plane that neither
    # half shows (the camera sees a cap of 78 degrees, and rays beyond 75 degrees of grazing are not used)
    assert both < 0.1 * alone and both < 0.015
    plain = observe(half, ObservationConfig(num_surface=3000, free_space_per_point=0.0), np.random.default_rng(0))
    assert len(plain.queries) == len(obs.queries) - 3 * 3000 and (plain.weights == 1).all()


def test_free_space_contradiction_drops_the_mirrored_points():
    # an asymmetric shape: a block right of the plane, in front of a symmetric back wall
    block = trimesh.creation.box(extents=(0.3, 0.3, 0.3), transform=trimesh.transformations.translation_matrix([0.3, 0.0, 0.1]))
    wall = trimesh.creation.box(extents=(1.2, 0.8, 0.05), transform=trimesh.transformations.translation_matrix([0.0, 0.0, -0.4]))
    seen = scan(trimesh.util.concatenate([block, wall]), (0.0, 0.3, 2.5))
    on_block = seen.points[:, 2] > -0.3
    mirrored = seen.points * np.array([-1.0, 1.0, 1.0])
    keep = mirror_consistent(mirrored, seen.points, np.broadcast_to(seen.camera_origin, seen.points.shape), margin=0.02)
    assert keep[~on_block].mean() > 0.95  # the wall's mirror image is the wall: consistent
    assert keep[on_block].mean() < 0.05  # the block's lies in front of the wall, where the camera saw through
    obs = observe(seen, ObservationConfig(num_surface=2000, symmetry="canonical"), np.random.default_rng(0))
    assert 0.1 < obs.mirrored_dropped < 0.9 and (obs.weights == 0).sum() == 3 * round(obs.mirrored_dropped * 2000)


def test_unknown_symmetry_is_refused():
    with pytest.raises(ValueError, match="symmetry='plane'"):
        observe(PartialScan("s", np.random.default_rng(0).normal(size=(50, 3))), ObservationConfig(symmetry="plane"), np.random.default_rng(0))
