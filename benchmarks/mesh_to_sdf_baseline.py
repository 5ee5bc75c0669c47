"""Baseline: mesh -> SDF samples with marian42's ``mesh_to_sdf`` (PyPI ``mesh-to-sdf``).

Runs in its own venv (see benchmarks/README_mesh_to_sdf.md), headless via OSMesa:

    PYOPENGL_PLATFORM=osmesa .venv-bench/bin/python benchmarks/mesh_to_sdf_baseline.py \
        --mesh PATH --points N --out OUT.npz [--mode near_surface|query] [--seed S]

Frames (from mesh_to_sdf 0.0.15's source):
* ``near_surface``: ``sample_sdf_near_surface`` first applies ``scale_to_unit_sphere``:
  ``x_unit = (x_in - center) / scale`` with ``center = mesh.bounding_box.centroid``
  (centre of the axis-aligned bounding box, not the vertex mean) and
  ``scale = max_i |v_i - center|``.  The returned points AND sdf are in that unit-sphere frame.
  Back to the input frame: ``x_in = points * scale + center``, ``sdf_in = sdf * scale``.
  OUT.npz stores ``center`` and ``scale`` for this.
* ``query``: ``mesh_to_sdf`` does NOT normalise; points and sdf are in the input frame
  (its virtual cameras look at the origin, so the mesh should be roughly centred there).

This module imports mesh_to_sdf lazily, so it can be imported without it installed.
"""
import argparse
import json
import os
import time

import numpy as np


def unit_sphere_transform(mesh):
    """(center, scale) exactly as mesh_to_sdf.utils.scale_to_unit_sphere computes them."""
    center = np.asarray(mesh.bounding_box.centroid, dtype=np.float64)
    scale = float(np.max(np.linalg.norm(mesh.vertices - center, axis=1)))
    return center, scale


def _import_mesh_to_sdf():
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")  # must precede any OpenGL import
    import mesh_to_sdf
    return mesh_to_sdf


def run_mesh_to_sdf(mesh, mode="near_surface", number_of_points=250_000, query_points=None,
                    sign_method="normal", seed=0):
    """Run mesh_to_sdf with its default settings (100 scans of 400x400, 11 normal samples).

    Returns (points float32 (N,3), sdf float32 (N,), timings dict).  Wall time is split into
    building the surface point cloud (100 virtual scans + KD-tree over all scan points) and the
    rest: sampling the query points + KD-tree SDF/sign queries.
    """
    m2s = _import_mesh_to_sdf()
    np.random.seed(seed)  # mesh_to_sdf draws from numpy's global RNG
    spc = m2s.surface_point_cloud
    orig_cloud, orig_kdtree = m2s.get_surface_point_cloud, spc.KDTree
    log = {"cloud": 0.0, "kdtree": 0.0, "cloud_points": 0}

    def timed_cloud(*args, **kwargs):  # looked up as a module global by both entry points
        t = time.perf_counter()
        cloud = orig_cloud(*args, **kwargs)
        log["cloud"] += time.perf_counter() - t
        log["cloud_points"] += len(cloud.points)
        return cloud

    def timed_kdtree(*args, **kwargs):  # built inside SurfacePointCloud.__init__
        t = time.perf_counter()
        tree = orig_kdtree(*args, **kwargs)
        log["kdtree"] += time.perf_counter() - t
        return tree

    m2s.get_surface_point_cloud, spc.KDTree = timed_cloud, timed_kdtree
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        if mode == "near_surface":
            points, sdf = m2s.sample_sdf_near_surface(
                mesh, number_of_points=number_of_points, sign_method=sign_method)
        elif mode == "query":
            points = np.asarray(query_points, dtype=np.float64)
            sdf = m2s.mesh_to_sdf(mesh, points, sign_method=sign_method)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        m2s.get_surface_point_cloud, spc.KDTree = orig_cloud, orig_kdtree
    timings = {"seconds_total": total,
               "cpu_seconds_total": cpu,                # all threads of this process (OSMesa's too)
               "seconds_surface_cloud": log["cloud"],  # 100 renders + reprojection + KD-tree
               "seconds_kdtree": log["kdtree"],        # (part of seconds_surface_cloud)
               "seconds_sdf": total - log["cloud"],    # sampling + KD-tree queries + signs
               "cloud_points": log["cloud_points"]}
    return np.asarray(points, np.float32), np.asarray(sdf, np.float32), timings


def winding_inside(mesh, points, budget=65536):
    """Exact inside test for a closed mesh: |generalised winding number| > 1/2 (plain numpy,
    Van Oosterom-Strackee solid angles; ~1.5 min per 100k points x 17k faces on 2 cores)."""
    tri = np.asarray(mesh.triangles, dtype=np.float64)
    A, B, C = (np.ascontiguousarray(tri[:, i].T) for i in range(3))  # each (3, F)
    points = np.asarray(points, dtype=np.float64)
    inside = np.empty(len(points), dtype=bool)
    step = max(1, budget // len(tri))
    for i in range(0, len(points), step):
        q = points[i:i + step, :, None]  # (P, 3, 1)
        a, b, c = A[None] - q, B[None] - q, C[None] - q  # (P, 3, F)
        la, lb, lc = (np.sqrt((v * v).sum(1)) for v in (a, b, c))
        det = (a[:, 0] * (b[:, 1] * c[:, 2] - b[:, 2] * c[:, 1])
               + a[:, 1] * (b[:, 2] * c[:, 0] - b[:, 0] * c[:, 2])
               + a[:, 2] * (b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0]))
        den = la * lb * lc + (a * b).sum(1) * lc + (b * c).sum(1) * la + (c * a).sum(1) * lb
        inside[i:i + step] = np.abs(np.arctan2(det, den).sum(1)) > np.pi  # |4*pi*w| > 2*pi
    return inside


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mesh", required=True)
    p.add_argument("--points", type=int, default=250_000, help="number of samples (near_surface)")
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["near_surface", "query"], default="near_surface")
    p.add_argument("--queries", help="query mode: .npz with array 'points' (N,3), input frame")
    p.add_argument("--sign-method", choices=["normal", "depth"], default="normal")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true",
                   help="score signs against an exact winding-number inside test (closed meshes)")
    a = p.parse_args(argv)

    import trimesh
    mesh = trimesh.load(a.mesh, force="mesh")
    queries = np.load(a.queries)["points"] if a.mode == "query" else None
    t = time.perf_counter()
    _import_mesh_to_sdf()
    seconds_import = time.perf_counter() - t

    points, sdf, timings = run_mesh_to_sdf(mesh, a.mode, a.points, queries, a.sign_method, a.seed)
    if a.mode == "near_surface":
        center, scale = unit_sphere_transform(mesh)
    else:
        center, scale = np.zeros(3), 1.0
    np.savez(a.out, points=points, sdf=sdf, center=center, scale=scale,
             frame="unit_sphere" if a.mode == "near_surface" else "input", **timings)

    report = {"mesh": a.mesh, "faces": len(mesh.faces), "mode": a.mode, "points": len(points),
              "sign_method": a.sign_method, "seed": a.seed, "seconds_import": seconds_import,
              **timings}
    if a.check:
        inside = winding_inside(mesh, points.astype(np.float64) * scale + center)
        ok = inside == (sdf < 0)
        report["sign_accuracy"] = float(ok.mean())
        if a.mode == "near_surface":  # layout: 2 x k near-surface (sigma .0025, .00025), uniform
            k = int(a.points * 47 / 50) // 2
            report.update(sign_acc_sigma_0025=float(ok[:k].mean()),
                          sign_acc_sigma_00025=float(ok[k:2 * k].mean()),
                          sign_acc_uniform=float(ok[2 * k:].mean()))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
