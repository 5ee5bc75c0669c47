"""Headless pictures of meshes and point clouds: ray casting, no OpenGL, no display.

A mesh is rendered by casting one camera ray per pixel into Open3D's ``RaycastingScene`` (Embree,
on the CPU) and shading each hit by its interpolated vertex normal under one fixed light; a point
cloud is drawn as round splats with a depth buffer; both compose by depth in one image. Every
picture of a shape uses the same ``Framing`` (centre and radius of a reference geometry, usually
the ground truth) and the same views, so that the pictures of different methods compare pixel for
pixel. Frames are the model's: y is up (ShapeNet's convention; ``up=`` to change it).

    camera = Camera.orbit(Framing.of(gt_points), azimuth=30, elevation=20)
    image = render([Mesh(mesh.vertices, mesh.faces)], camera, size=256)  # (256, 256, 3) uint8

A completion coloured by its distance to the ground truth: ``Mesh(..., distance_to=gt_points,
max_distance=0.05)`` colours each pixel's hit point by its distance (``DISTANCE_CMAP``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sdf_autodec.optional import open3d

BACKGROUND = (255, 255, 255)
MESH_COLOR = (0.72, 0.74, 0.78)  # light grey-blue
SCAN_COLOR = (0.95, 0.45, 0.10)  # orange: what was observed
GT_COLOR = (0.62, 0.78, 0.62)  # sage: the ground truth
DISTANCE_CMAP = "viridis"
AMBIENT, DIFFUSE, SPECULAR, SHININESS = 0.30, 0.62, 0.18, 24.0
FOV_DEG = 35.0
CREASE_COS = math.cos(math.radians(40.0))  # corners whose normal turns more than this from the face's are sharp


@dataclass(frozen=True)
class Framing:
    """What the camera looks at: a centre ``(3,)`` and a radius that every view keeps in frame."""

    center: np.ndarray
    radius: float

    @staticmethod
    def of(points: np.ndarray) -> "Framing":
        """The bounding box centre of ``points: (N, 3)`` and the farthest point's distance from it."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points) == 0:
            return Framing(np.zeros(3), 1.0)
        center = (points.min(axis=0) + points.max(axis=0)) / 2
        radius = float(np.linalg.norm(points - center, axis=1).max())
        return Framing(center, radius if radius > 1e-9 else 1.0)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``eye``, unit ``forward``/``right``/``up`` (right-handed), vertical field of view."""

    eye: np.ndarray
    forward: np.ndarray
    right: np.ndarray
    up: np.ndarray
    fov_deg: float = FOV_DEG

    @staticmethod
    def orbit(framing: Framing, azimuth: float = 30.0, elevation: float = 20.0, up: str = "y", fov_deg: float = FOV_DEG) -> "Camera":
        """Looking at ``framing.center`` from ``azimuth``/``elevation`` degrees, far enough that the
        framing sphere fills the view (azimuth 0 looks from +z towards -z when ``up`` is y)."""
        world_up = _axis(up)
        # a fixed horizontal basis around the up axis: (front, side) with front x side = up
        front = np.roll(world_up, 1)  # y-up → +z, z-up → +x, x-up → +y
        side = np.cross(world_up, front)
        a, e = math.radians(azimuth), math.radians(elevation)
        direction = math.cos(e) * (math.cos(a) * front + math.sin(a) * side) + math.sin(e) * world_up  # centre → eye
        distance = framing.radius / math.sin(math.radians(fov_deg) / 2) * 1.08  # a little margin around the sphere
        eye = framing.center + distance * direction
        forward = -direction
        right = np.cross(forward, world_up)
        right /= np.linalg.norm(right)
        return Camera(eye, forward, right, np.cross(right, forward), fov_deg)

    def rays(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``origins, directions: (H*W, 3)``, unit directions through the pixel centres, row-major."""
        t = math.tan(math.radians(self.fov_deg) / 2)
        aspect = width / height
        xs = ((np.arange(width) + 0.5) / width * 2 - 1) * t * aspect
        ys = (1 - (np.arange(height) + 0.5) / height * 2) * t
        d = self.forward[None, None] + xs[None, :, None] * self.right[None, None] + ys[:, None, None] * self.up[None, None]
        d = d.reshape(-1, 3)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return np.broadcast_to(self.eye, d.shape), d

    def project(self, points: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``points: (N, 3)`` → pixel ``rows, cols`` (float, ``(N,)``) and distance from the eye ``(N,)``
        (inf behind the camera), consistent with ``rays``."""
        d = np.asarray(points, dtype=np.float64) - self.eye
        z = d @ self.forward
        t = math.tan(math.radians(self.fov_deg) / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = (d @ self.right) / (z * t * width / height)
            y = (d @ self.up) / (z * t)
        cols = (x + 1) / 2 * width - 0.5
        rows = (1 - y) / 2 * height - 0.5
        dist = np.where(z > 1e-9, np.linalg.norm(d, axis=1), np.inf)
        return rows, cols, dist


@dataclass
class Mesh:
    """A triangle mesh to draw: ``vertices: (V, 3)``, ``faces: (F, 3)``; one colour, or each pixel
    coloured by the hit point's distance to ``distance_to: (M, 3)`` (0 → ``max_distance``)."""

    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[float, float, float] = MESH_COLOR
    distance_to: np.ndarray | None = None
    max_distance: float = 0.05
    _tree: object = field(default=None, repr=False, compare=False)  # the KD-tree of distance_to, built once


@dataclass
class Points:
    """A point cloud to draw as splats: ``points: (N, 3)``, one colour, ``radius`` in pixels at 256²."""

    points: np.ndarray
    color: tuple[float, float, float] = SCAN_COLOR
    radius: float = 1.5


def render(items: list[Mesh | Points], camera: Camera, size: int | tuple[int, int] = 256) -> np.ndarray:
    """Draw ``items`` as seen by ``camera``: ``(H, W, 3)`` uint8 RGB on white; nearest surface wins."""
    height, width = (size, size) if isinstance(size, int) else size
    rgb = np.tile(np.asarray(BACKGROUND, dtype=np.float64) / 255, (height * width, 1))
    depth = np.full(height * width, np.inf)
    meshes = [m for m in items if isinstance(m, Mesh) and len(m.faces)]
    if meshes:
        _draw_meshes(meshes, camera, height, width, rgb, depth)
    for cloud in items:
        if isinstance(cloud, Points) and len(cloud.points):
            _draw_points(cloud, camera, height, width, rgb, depth)
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals ``(V, 3)`` of ``faces: (F, 3)`` (zero for unused vertices)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # length = 2 x area
    ids = f.reshape(-1)
    normals = np.column_stack([np.bincount(ids, np.repeat(face_n[:, c], 3), minlength=len(v)) for c in range(3)])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def _draw_meshes(meshes: list[Mesh], camera: Camera, height: int, width: int, rgb: np.ndarray, depth: np.ndarray) -> None:
    o3d = open3d()
    scene = o3d.t.geometry.RaycastingScene()
    for m in meshes:
        scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(m.vertices, dtype=np.float32)), o3d.core.Tensor(np.ascontiguousarray(m.faces, dtype=np.uint32)))
    origins, dirs = camera.rays(height, width)
    hit = scene.cast_rays(o3d.core.Tensor(np.hstack([origins, dirs]).astype(np.float32)))
    t = hit["t_hit"].numpy().astype(np.float64)
    px = np.flatnonzero(np.isfinite(t))
    if len(px) == 0:
        return
    geometry = hit["geometry_ids"].numpy()[px].astype(np.int64)
    prim = hit["primitive_ids"].numpy()[px].astype(np.int64)
    uv = hit["primitive_uvs"].numpy()[px].astype(np.float64)
    bary = np.column_stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]])
    view = dirs[px]
    points = origins[px] + t[px, None] * view
    shade = np.empty((len(px), 3))
    for g, m in enumerate(meshes):
        mine = np.flatnonzero(geometry == g)
        if len(mine) == 0:
            continue
        corner = np.asarray(m.faces, dtype=np.int64)[prim[mine]]  # (n, 3) vertex ids of each hit face
        face = np.asarray(m.vertices, dtype=np.float64)[corner]
        flat = np.cross(face[:, 1] - face[:, 0], face[:, 2] - face[:, 0])
        flat /= np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-300)
        smooth = vertex_normals(m.vertices, m.faces)[corner]  # (n, 3 corners, 3)
        # a corner across a crease (a cube's edge) takes the face's own normal: smooth where smooth, sharp where sharp
        crease = (smooth * flat[:, None]).sum(axis=2) < CREASE_COS
        smooth = np.where(crease[..., None], flat[:, None], smooth)
        n = (smooth * bary[mine, :, None]).sum(axis=1)
        n = np.where((np.linalg.norm(n, axis=1) > 1e-12)[:, None], n, flat)
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        n = np.where(((n * view[mine]).sum(axis=1) > 0)[:, None], -n, n)  # two-sided: face the viewer
        base = _distance_colors(points[mine], m) if m.distance_to is not None else np.tile(m.color, (len(mine), 1))
        shade[mine] = _phong(base, n, view[mine], camera)
    rgb[px] = shade
    depth[px] = t[px]


def _phong(base: np.ndarray, normals: np.ndarray, view: np.ndarray, camera: Camera) -> np.ndarray:
    """One light from above-left of the camera, so that every view is lit alike."""
    light = -camera.forward + 0.6 * camera.up - 0.5 * camera.right
    light /= np.linalg.norm(light)
    diffuse = np.clip(normals @ light, 0, None)
    half = light - view
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    specular = np.clip((normals * half).sum(axis=1), 0, None) ** SHININESS
    return base * (AMBIENT + DIFFUSE * diffuse[:, None]) + SPECULAR * specular[:, None]


def _distance_colors(points: np.ndarray, mesh: Mesh) -> np.ndarray:
    from matplotlib import colormaps
    from scipy.spatial import cKDTree

    if mesh._tree is None:
        mesh._tree = cKDTree(np.asarray(mesh.distance_to, dtype=np.float64))
    d, _ = mesh._tree.query(points)
    return colormaps[DISTANCE_CMAP](np.clip(d / mesh.max_distance, 0, 1))[:, :3]


def _draw_points(cloud: Points, camera: Camera, height: int, width: int, rgb: np.ndarray, depth: np.ndarray) -> None:
    """Round splats of radius ``cloud.radius * size/256`` pixels; the nearest splat at each pixel wins,
    and only where it is in front of what is already drawn (a small tolerance keeps points lying on
    a surface visible)."""
    pts = np.asarray(cloud.points, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]
    rows, cols, dist = camera.project(pts, height, width)
    r = max(0.5, cloud.radius * min(height, width) / 256)
    k = int(math.ceil(r))
    offsets = [(dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1) if dy * dy + dx * dx <= r * r + 1e-9]
    ri, ci = np.rint(rows).astype(np.int64), np.rint(cols).astype(np.int64)
    pix, dd = [], []
    for dy, dx in offsets:
        y, x = ri + dy, ci + dx
        ok = np.isfinite(dist) & (y >= 0) & (y < height) & (x >= 0) & (x < width)
        pix.append(y[ok] * width + x[ok])
        dd.append(dist[ok])
    pix, dd = np.concatenate(pix), np.concatenate(dd)
    if len(pix) == 0:
        return
    order = np.lexsort((dd, pix))  # by pixel, then nearest first
    pix, dd = pix[order], dd[order]
    first = np.r_[True, pix[1:] != pix[:-1]]
    pix, dd = pix[first], dd[first]
    tolerance = 0.01 * float(np.median(dd))
    front = dd <= depth[pix] + tolerance
    pix, dd = pix[front], dd[front]
    if len(pix) == 0:
        return
    # a little depth cue: nearer splats a touch brighter
    near, far = dd.min(), dd.max()
    cue = 1.0 - 0.25 * (dd - near) / max(far - near, 1e-9)
    rgb[pix] = np.asarray(cloud.color)[None] * cue[:, None]
    depth[pix] = np.minimum(depth[pix], dd)


def _axis(name: str) -> np.ndarray:
    axes = {"x": 0, "y": 1, "z": 2}
    if name not in axes:
        raise ValueError(f"up={name!r}: choose x, y or z")
    v = np.zeros(3)
    v[axes[name]] = 1.0
    return v


def silhouette(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the pixels that are not background."""
    return (image != np.asarray(BACKGROUND, dtype=np.uint8)).any(axis=-1)
