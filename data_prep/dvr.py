"""Real depth scans in the DVR / Occupancy Networks format, loaded into the project's ``Scan``.

One object directory holds ``depth/XXXX0001.exr`` (one depth map per view, camera-frame z, ``+inf``
background), ``cameras.npz`` (``world_mat_i``: 4x4 world-to-camera, ``camera_mat_i``: 4x4 intrinsics
in normalised device coordinates) and ``pointcloud.npz`` (ground-truth ``points`` and ``normals`` on
the full shape, in the same world frame as the cameras).

Camera convention, checked on all 20 x 24 views of ``shared/data/scans/dvr_tables``: the DVR camera
frame already is OpenCV's (x right, y down = image rows, z forward, depth = camera-frame z > 0) and
``world_mat`` is a proper rotation plus translation (det +1, no scale). Flipping y moves the median
distance to the ground truth from ~0.002 to 0.01-0.2, so the axes are not mirrored. DVR's NDC pixel
convention, ``x_ndc = (u + 0.5) / W * 2 - 1``, becomes the pixel matrix
``K = [[W/2, 0, W/2], [0, H/2, H/2], [0, 0, 1]] @ camera_mat[:3, :3]``, so that
``[u + 0.5, v + 0.5, 1] ~ K @ p_cam``: the centre of pixel ``(u, v)`` sits at ``(u + 0.5, v + 0.5)``,
which is also the convention of Open3D's ``create_rays_pinhole`` used by ``data_prep.scanner``.

Should a ``world_mat`` carry a uniform scale ``s`` (``world_mat[:3, :3] = s * R``), ``Camera``'s
``world_to_camera`` holds the rigid part ``[R | t / s]`` (camera frame in world units, so
``Camera.origin`` is the true camera centre) and ``Scan.depth`` is the file's depth divided by ``s``.
Anything else (shear, non-uniform scale, a mirror) is rejected with a ``ValueError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.scanner import Camera, Scan
from sdf_autodec.geometry.frames import background_rays
from sdf_autodec.storage.dvr import DVR_CLOUD, read_dvr_cloud
from sdf_autodec.storage.layout import write_scan
from sdf_autodec.optional import MissingDependency
from sdf_autodec.seeds import keyed_rng


def read_exr_depth(path) -> np.ndarray:
    """The first of the ``R``/``Z``/``Y``/``depth`` channels (or the only channel) of an EXR file.

    Returns ``(H, W)`` float32; NaN becomes ``+inf`` (background). The DVR files are half floats.
    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an unreadable one.
    """
    try:
        import OpenEXR
    except ImportError:
        raise MissingDependency("reading EXR depth maps needs OpenEXR: `pip install OpenEXR`") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: EXR depth map not found")
    try:
        channels = OpenEXR.File(str(path), separate_channels=True).channels()
    except Exception as e:  # OpenEXR raises RuntimeError for corrupt/truncated files
        reason = (str(e).splitlines() or [type(e).__name__])[0]
        raise ValueError(f"{path}: unreadable EXR file ({reason})") from None
    name = next((c for c in ("R", "Z", "Y", "depth") if c in channels), None)
    if name is None and len(channels) == 1:
        name = next(iter(channels))
    if name is None:
        raise ValueError(f"{path}: no depth channel among {sorted(channels)}")
    depth = np.asarray(channels[name].pixels, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"{path}: channel {name!r} has shape {depth.shape}, expected (H, W)")
    return np.where(np.isnan(depth), np.float32(np.inf), depth)


def _load_cameras(object_dir: Path) -> dict[str, np.ndarray]:
    path = object_dir / "cameras.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: cameras.npz not found")
    try:
        with np.load(path) as f:
            return {k: np.asarray(f[k], dtype=np.float64) for k in f.files}
    except Exception as e:
        raise ValueError(f"{path}: unreadable cameras file ({e})") from None


def _dvr_camera(
    cameras: dict[str, np.ndarray], view: int, width: int, height: int, where: Path
) -> tuple[Camera, float]:
    """Our ``Camera`` for one DVR view, and the world_mat's scale ``s`` (1 for a rigid one)."""
    world_mat, camera_mat = cameras[f"world_mat_{view}"], cameras[f"camera_mat_{view}"]
    if world_mat.shape != (4, 4) or camera_mat.shape != (4, 4):
        raise ValueError(f"{where}: view {view}: world_mat/camera_mat must be 4x4")
    a = world_mat[:3, :3]
    det = np.linalg.det(a)
    if not np.allclose(world_mat[3], [0, 0, 0, 1]) or det <= 0:
        raise ValueError(f"{where}: view {view}: world_mat is not a rotation+translation (det {det:.3g})")
    s = float(np.cbrt(det))
    r = a / s
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-4):
        raise ValueError(f"{where}: view {view}: world_mat has shear or non-uniform scale")
    k_ndc = camera_mat
    pinhole = np.allclose(k_ndc[2:], [[0, 0, 1, 0], [0, 0, 0, 1]]) and np.allclose(k_ndc[:2, 3], 0)
    if not pinhole:
        raise ValueError(f"{where}: view {view}: camera_mat is not a pinhole NDC matrix")
    ndc_to_pixel = np.array([[width / 2, 0, width / 2], [0, height / 2, height / 2], [0, 0, 1]])
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = r, world_mat[:3, 3] / s
    return Camera(ndc_to_pixel @ k_ndc[:3, :3], w2c, width, height), s


def load_dvr_views(object_dir, views: list[int]) -> list[Scan]:
    """One ``Scan`` per view index: ``points`` ``(M_i, 3)`` float32 in the DVR world frame (the frame
    of ``pointcloud.npz``), ``depth`` ``(H, W)`` float32 camera-frame z (256 x 256 here; ``inf`` =
    background, as is any depth <= 0 or NaN in the file) and the view's ``Camera`` (OpenCV axes,
    pixel intrinsics; see the module docstring). Views are read from ``depth/{view:04d}0001.exr``."""
    object_dir = Path(object_dir)
    cameras = _load_cameras(object_dir)
    n_views = sum(re.fullmatch(r"world_mat_\d+", k) is not None for k in cameras)
    scans = []
    for view in views:
        view = int(view)
        if not 0 <= view < n_views or f"camera_mat_{view}" not in cameras:
            raise ValueError(f"{object_dir / 'cameras.npz'}: view {view} out of range 0..{n_views - 1}")
        depth = read_exr_depth(object_dir / "depth" / f"{view:04d}0001.exr")
        h, w = depth.shape
        camera, s = _dvr_camera(cameras, view, w, h, object_dir / "cameras.npz")
        depth = np.where(depth > 0, depth / np.float32(s), np.float32(np.inf))  # 0 / negative / NaN: background
        v, u = np.nonzero(np.isfinite(depth))
        z = depth[v, u].astype(np.float64)
        pix = np.stack([u + 0.5, v + 0.5, np.ones_like(z)])  # (3, M) pixel centres
        p_cam = (np.linalg.solve(camera.intrinsics, pix) * z).T  # (M, 3)
        r, t = camera.world_to_camera[:3, :3], camera.world_to_camera[:3, 3]
        scans.append(Scan(((p_cam - t) @ r).astype(np.float32), depth, camera))
    return scans


def load_dvr_view(object_dir, view: int) -> Scan:
    """One view as a ``Scan``; see ``load_dvr_views``."""
    return load_dvr_views(object_dir, [view])[0]


def merge_scans(scans: list[Scan]) -> tuple[np.ndarray, np.ndarray]:
    """All points of several views, ``(M, 3)`` float32, and the camera centre that saw each, ``(M, 3)``
    float32 (for free-space / ray reasoning in multi-view completion)."""
    if not scans:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
    points = np.concatenate([s.points for s in scans]).astype(np.float32)
    origins = np.concatenate([np.broadcast_to(s.camera.origin, s.points.shape) for s in scans]).astype(np.float32)
    return points, origins


def load_dvr_ground_truth(object_dir) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth ``points`` ``(N, 3)`` float64 and unit ``normals`` ``(N, 3)`` float64 on the full
    shape (stored as float16), in the same world frame as the scans. ``loc``/``scale`` in the file
    describe the normalisation of the original mesh that is already applied; they are not used."""
    points, normals = read_dvr_cloud(Path(object_dir) / DVR_CLOUD)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return points, normals / np.where(length > 0, length, 1.0)


@dataclass
class DvrScanConfig:
    """DVR / Occupancy Networks renderings → partial-scan npz files that ``complete`` reads."""

    input: str = ""
    """Folder of DVR objects (``<id>/depth/*.exr``, ``<id>/cameras.npz``, ``<id>/pointcloud.npz``)."""
    output: str = ""
    """Folder for ``<id>.npz`` scans: ``points (M, 3)``, ``camera_origins (M, 3)``, ``views``, ``background_rays (B, 6)``."""
    views: list[int] = field(default_factory=lambda: [0])
    """View indices merged into each scan (e.g. ``[0]``, or ``[0,8,16]`` for three views 120° apart)."""
    max_points: int = 20_000
    """Points kept per scan (a seeded random subset; 0 = all)."""
    seed: int = 0
    """Seed of the subsampling."""
    background_stride: int = 2
    """Also store the rays through every ``background_stride``-th background pixel (in both axes) of
    each view, ``background_rays (B, 6)``: they hit nothing (``observe.background_per_point`` uses
    them); 0: none."""


def export_dvr_scans(cfg: DvrScanConfig) -> dict[str, dict]:
    """Write one scan per DVR object, in the DVR world frame (the frame of its ``pointcloud.npz``: a
    model prepped with ``normalization=unit_cube`` takes it as is). Objects that cannot be read are
    reported with their reason and skipped. Returns ``{id: {"status", "points" | "reason"}}``."""
    root, out = Path(cfg.input), Path(cfg.output)
    if not cfg.input or not cfg.output:
        raise ValueError("dvr needs input=DVR_DIR and output=SCAN_DIR")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: DVR folder not found")
    objects = sorted(p for p in root.iterdir() if (p / "cameras.npz").is_file())
    if not objects:
        raise FileNotFoundError(f"{root}: no DVR object folders (<id>/cameras.npz) found")
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for obj in objects:
        try:
            views = load_dvr_views(obj, cfg.views)
            points, origins = merge_scans(views)
            if len(points) == 0:
                raise ValueError(f"{obj}: views {cfg.views} see nothing")
        except (OSError, ValueError, MissingDependency) as e:
            report[obj.name] = {"status": "failed", "reason": str(e)}
            continue
        if cfg.max_points and len(points) > cfg.max_points:
            keep = np.sort(keyed_rng(cfg.seed, obj.name).choice(len(points), cfg.max_points, replace=False))
            points, origins = points[keep], origins[keep]
        background = None
        if cfg.background_stride > 0:
            background = np.concatenate([background_rays(v.depth, v.camera.intrinsics, v.camera.world_to_camera, cfg.background_stride) for v in views])
        write_scan(out / f"{obj.name}.npz", points, camera_origins=origins, views=np.asarray(cfg.views), background_rays=background)
        report[obj.name] = {"status": "ok", "points": int(len(points))}
    return report
