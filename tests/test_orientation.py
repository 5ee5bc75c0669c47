"""Which side is outside for a camera-less scan: ``estimate_normals(orient="gravity")`` on a
synthetic thin table, seen from above and from below its top (the camera always above the floor)."""

import numpy as np
import pytest
import trimesh

from data_prep.scanner import Camera, look_at, scan_mesh
from sdf_autodec.shapes.scans import estimate_normals


def thin_table() -> trimesh.Trimesh:
    """A 0.02-thick top at y = 0.3 on four legs standing on the floor y = -0.4."""
    top = trimesh.creation.box(extents=(1.0, 0.02, 0.6), transform=trimesh.transformations.translation_matrix([0, 0.29, 0]))
    legs = [trimesh.creation.box(extents=(0.05, 0.68, 0.05), transform=trimesh.transformations.translation_matrix([x, -0.06, z])) for x in (-0.45, 0.45) for z in (-0.25, 0.25)]
    return trimesh.util.concatenate([top, *legs])


def scan_from(eye) -> tuple[np.ndarray, np.ndarray]:
    focal = 0.5 * 200 / np.tan(np.deg2rad(25))
    camera = Camera(np.array([[focal, 0, 100], [0, focal, 100], [0, 0, 1.0]]), look_at(np.asarray(eye, float), np.zeros(3), np.array([0, 1.0, 0])), 200, 200)
    points = scan_mesh(thin_table(), camera).points.astype(np.float64)
    return points, camera.origin


@pytest.mark.parametrize("eye, top_faces", [((1.2, 1.6, 1.4), +1), ((1.6, -0.3, 1.6), -1)], ids=["from above", "from below the top"])
def test_gravity_turns_the_normals_to_the_side_the_table_was_seen_from(eye, top_faces):
    points, camera = scan_from(eye)
    normals = estimate_normals(points, 30, "gravity")
    right = np.sum(normals * (camera - points), axis=1) > 0
    assert right.mean() > 0.9
    top = (points[:, 1] > 0.27) & (np.abs(normals[:, 1]) > 0.9)  # the top's seen face
    assert top.sum() > 100 and np.sign(np.median(normals[top, 1])) == top_faces
