"""Deterministic procedural generator of watertight furniture-like meshes.

This is the project's bundled default dataset.  Every shape is assembled from
simple primitives (boxes, cylinders, cone frustums, spheres) whose proportions
*and* part choices are drawn from a :class:`numpy.random.Generator`; the parts
always overlap, and they are merged with a boolean union (``manifold3d``) into a
single watertight, manifold, outward-oriented triangle mesh with exactly one
connected component.  Overlapping parts are never just concatenated, since that
would break inside/outside tests based on ray parity.

Conventions: units are roughly metres (a chair is about 1 unit tall), the Y axis
points up, the floor is the plane ``y = 0`` and the "front" of a chair faces +Z.
Later pipeline stages normalise the meshes, so only the proportions matter.

Shape ``i`` of family ``f`` is generated from its own generator,
``np.random.default_rng([seed, FAMILIES.index(f), i])``, so a shape does not
depend on how many shapes or which other families are requested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from manifold3d import Manifold, OpType

from sdf_autodec.atomic import atomic_write_bytes

FAMILIES: tuple[str, ...] = ("chair", "table", "lamp", "shelf")
"""Names of the shape families that :func:`make_shape` can build."""

_SEGMENTS = 28
"""Circular segments used for cylinders and cone frustums."""

_SPHERE_SEGMENTS = 16
"""Circular segments used for spheres (rounded up to a multiple of 4 by manifold3d)."""

_OVERLAP = 0.006
"""How far (in units) touching parts are pushed into each other so the union is connected."""

Point = Sequence[float]


@dataclass
class ProceduralConfig:
    """Settings for :func:`generate_dataset` (usable as a Hydra/OmegaConf structured config)."""

    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    """Families to generate, each one of :data:`FAMILIES`."""

    shapes_per_family: int = 8
    """Number of shapes written per family."""

    seed: int = 0
    """Base seed; the same seed always produces byte-identical files."""


# --------------------------------------------------------------------------- primitives


def _box(lo: Point, hi: Point) -> Manifold:
    """Axis-aligned solid box spanning the corners ``lo`` and ``hi``."""
    lo_arr, hi_arr = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    return Manifold.cube(tuple(hi_arr - lo_arr)).translate(tuple(lo_arr))


def _cylinder(p0: Point, p1: Point, r0: float, r1: float | None = None) -> Manifold:
    """Solid cylinder with its axis from ``p0`` to ``p1``; a cone frustum if ``r1`` differs from ``r0``."""
    start = np.asarray(p0, dtype=float)
    axis = np.asarray(p1, dtype=float) - start
    length = float(np.linalg.norm(axis))
    z_dir = axis / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(z_dir[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x_dir = np.cross(helper, z_dir)
    x_dir /= np.linalg.norm(x_dir)
    y_dir = np.cross(z_dir, x_dir)
    frame = np.column_stack([x_dir, y_dir, z_dir, start])
    radius_high = r0 if r1 is None else r1
    return Manifold.cylinder(length, r0, radius_high, _SEGMENTS).transform(frame)


def _sphere(center: Point, radius: float) -> Manifold:
    """Solid sphere."""
    return Manifold.sphere(radius, _SPHERE_SEGMENTS).translate(tuple(float(c) for c in center))


def _tilt_back(parts: list[Manifold], pivot: Point, degrees: float) -> list[Manifold]:
    """Rotates ``parts`` about the X axis through ``pivot`` so that their tops lean towards -Z."""
    p = tuple(float(c) for c in pivot)
    minus_p = tuple(-c for c in p)
    return [part.translate(minus_p).rotate((-degrees, 0.0, 0.0)).translate(p) for part in parts]


def _lerp(a: Point, b: Point, t: float) -> np.ndarray:
    """Point at fraction ``t`` of the way from ``a`` to ``b``."""
    a_arr = np.asarray(a, dtype=float)
    return a_arr + t * (np.asarray(b, dtype=float) - a_arr)


# --------------------------------------------------------------------------- chair


def _chair_legs(rng: np.random.Generator, width: float, depth: float, top: float) -> list[Manifold]:
    """Four legs under a seat whose underside is at height ``top``, optionally splayed and braced."""
    radius = rng.uniform(0.016, 0.026)
    inset = rng.uniform(0.015, 0.05) + radius
    round_legs = rng.random() < 0.6
    splay = rng.uniform(0.0, 0.05) if round_legs else 0.0
    taper = rng.uniform(0.65, 1.0) if round_legs else 1.0

    parts = []
    axes = {}
    for sx in (-1, 1):
        for sz in (-1, 1):
            upper = np.array([sx * (width / 2 - inset), top + _OVERLAP, sz * (depth / 2 - inset)])
            lower = np.array([upper[0] + sx * splay, 0.0, upper[2] + sz * splay])
            axes[sx, sz] = (lower, upper)
            if round_legs:
                parts.append(_cylinder(lower, upper, radius * taper, radius))
            else:
                parts.append(_box(lower - [radius, 0, radius], upper + [radius, 0, radius]))

    if rng.random() < 0.5:  # H-shaped stretchers between the legs
        fraction = rng.uniform(0.1, 0.2) / (top + _OVERLAP)
        joints = {key: _lerp(lo, hi, fraction) for key, (lo, hi) in axes.items()}
        bar = radius * 0.6
        parts.append(_cylinder(joints[-1, -1], joints[-1, 1], bar))
        parts.append(_cylinder(joints[1, -1], joints[1, 1], bar))
        left_mid = _lerp(joints[-1, -1], joints[-1, 1], 0.5)
        right_mid = _lerp(joints[1, -1], joints[1, 1], 0.5)
        parts.append(_cylinder(left_mid, right_mid, bar))
    return parts


def _chair_pedestal(rng: np.random.Generator, top: float) -> list[Manifold]:
    """Office-chair style column on a star base with casters, or on a flat disc."""
    column_r = rng.uniform(0.022, 0.04)
    hub_y = rng.uniform(0.06, 0.1)
    parts = [_cylinder((0, hub_y - 0.02, 0), (0, top + _OVERLAP, 0), column_r)]
    if rng.random() < 0.6:
        caster_r = rng.uniform(0.02, 0.03)
        reach = rng.uniform(0.2, 0.3)
        n_spokes = int(rng.integers(4, 6))
        parts.append(_cylinder((0, hub_y - 0.03, 0), (0, hub_y + 0.03, 0), column_r * 1.6))
        for k in range(n_spokes):
            angle = 2 * np.pi * k / n_spokes + np.pi / 2
            end = (reach * np.cos(angle), caster_r * 1.5, reach * np.sin(angle))
            parts.append(_cylinder((0, hub_y, 0), end, 0.6 * caster_r))
            parts.append(_sphere((end[0], caster_r, end[2]), caster_r))
    else:
        disc_r = rng.uniform(0.18, 0.27)
        parts.append(_cylinder((0, 0, 0), (0, hub_y, 0), disc_r, disc_r * rng.uniform(0.5, 1.0)))
    return parts


def _chair_back(
    rng: np.random.Generator, width: float, depth: float, seat_y: float, seat_t: float
) -> list[Manifold]:
    """Backrest on the rear edge of the seat: a solid panel, vertical slats or horizontal rails, tilted back."""
    height = rng.uniform(0.28, 0.55)
    thick = rng.uniform(0.025, 0.045)
    tilt = rng.uniform(0.0, 14.0)
    style = rng.choice(["panel", "slats", "rails"])
    z0, z1 = -depth / 2, -depth / 2 + thick
    y_top = seat_y + height

    if style == "panel":
        parts = [_box((-width / 2, seat_y - seat_t / 2, z0), (width / 2, y_top, z1))]
    else:
        post = rng.uniform(0.025, 0.04)
        rail = rng.uniform(0.04, 0.09)
        inner = width / 2 - post
        parts = [
            _box((-width / 2, seat_y - seat_t / 2, z0), (-inner, y_top, z1)),
            _box((inner, seat_y - seat_t / 2, z0), (width / 2, y_top, z1)),
            _box((-inner - _OVERLAP, y_top - rail, z0), (inner + _OVERLAP, y_top, z1)),
        ]
        zc0, zc1 = z0 + 0.2 * thick, z1 - 0.2 * thick
        if style == "slats":
            n = int(rng.integers(2, 6))
            half = rng.uniform(0.01, 0.025)
            for x in np.linspace(-inner, inner, n + 2)[1:-1]:
                parts.append(_box((x - half, seat_y - _OVERLAP, zc0), (x + half, y_top - rail + _OVERLAP, zc1)))
        else:
            n = int(rng.integers(1, 4))
            half = rng.uniform(0.012, 0.025)
            for y in np.linspace(seat_y, y_top - rail, n + 2)[1:-1]:
                parts.append(_box((-inner - _OVERLAP, y - half, zc0), (inner + _OVERLAP, y + half, zc1)))
    return _tilt_back(parts, (0.0, seat_y, (z0 + z1) / 2), tilt)


def _chair_arms(rng: np.random.Generator, width: float, depth: float, seat_y: float) -> list[Manifold]:
    """Two armrests, each a bar on a front and a rear post standing on the seat."""
    arm_y = seat_y + rng.uniform(0.17, 0.26)
    half_w = rng.uniform(0.015, 0.03)
    thick = rng.uniform(0.02, 0.035)
    post_r = rng.uniform(0.01, 0.018)
    z_front = depth / 2 - rng.uniform(0.0, 0.06)
    parts = []
    for sx in (-1, 1):
        x = sx * (width / 2 - half_w)
        parts.append(_box((x - half_w, arm_y, -depth / 2), (x + half_w, arm_y + thick, z_front)))
        for z in (z_front - post_r - 0.01, -depth / 2 + post_r + 0.04):
            parts.append(_cylinder((x, seat_y - _OVERLAP, z), (x, arm_y + _OVERLAP, z), post_r))
    return parts


def _chair(rng: np.random.Generator) -> list[Manifold]:
    """Chair: seat, four legs or a pedestal, a backrest and sometimes armrests."""
    seat_y = rng.uniform(0.40, 0.50)
    width = rng.uniform(0.40, 0.56)
    depth = rng.uniform(0.38, 0.50)
    seat_t = rng.uniform(0.03, 0.07)
    parts = [_box((-width / 2, seat_y - seat_t, -depth / 2), (width / 2, seat_y, depth / 2))]
    if rng.random() < 0.7:
        parts += _chair_legs(rng, width, depth, seat_y - seat_t)
    else:
        parts += _chair_pedestal(rng, seat_y - seat_t)
    parts += _chair_back(rng, width, depth, seat_y, seat_t)
    if rng.random() < 0.4:
        parts += _chair_arms(rng, width, depth, seat_y)
    return parts


# --------------------------------------------------------------------------- table


def _table_legs(
    rng: np.random.Generator, feet: list[tuple[float, float]], top: float, box_extent: tuple[float, float] | None
) -> list[Manifold]:
    """Vertical legs at ``feet`` (x, z) up to height ``top``; for rectangular tops
    (``box_extent`` = leg-centre half extents) optionally an apron and a lower shelf."""
    radius = rng.uniform(0.018, 0.035)
    round_legs = rng.random() < 0.5
    taper = rng.uniform(0.55, 1.0)
    parts = []
    for x, z in feet:
        if round_legs:
            parts.append(_cylinder((x, 0, z), (x, top + _OVERLAP, z), radius * taper, radius))
        else:
            parts.append(_box((x - radius, 0, z - radius), (x + radius, top + _OVERLAP, z + radius)))
    if box_extent is None:
        return parts

    hx, hz = box_extent
    if rng.random() < 0.5:  # apron: a frame of boards just under the top
        apron_h = rng.uniform(0.05, 0.1)
        t = radius * 0.5
        y0, y1 = top - apron_h, top + _OVERLAP
        parts.append(_box((-hx, y0, hz - t), (hx, y1, hz + t)))
        parts.append(_box((-hx, y0, -hz - t), (hx, y1, -hz + t)))
        parts.append(_box((-hx - t, y0, -hz), (-hx + t, y1, hz)))
        parts.append(_box((hx - t, y0, -hz), (hx + t, y1, hz)))
    if rng.random() < 0.3:  # lower shelf between the legs
        y = rng.uniform(0.1, 0.2)
        rim = radius * taper
        parts.append(_box((-hx - rim, y, -hz - rim), (hx + rim, y + 0.025, hz + rim)))
    return parts


def _table_pedestal(rng: np.random.Generator, x: float, top: float, reach: float) -> list[Manifold]:
    """Central column at ``(x, 0)`` on a disc or on a cross of feet spanning ``reach``."""
    column_r = rng.uniform(0.035, 0.07)
    base_h = rng.uniform(0.025, 0.05)
    flare = rng.uniform(1.0, 1.6)
    parts = [_cylinder((x, base_h - _OVERLAP, 0), (x, top + _OVERLAP, 0), column_r * flare, column_r)]
    if rng.random() < 0.5:
        parts.append(_cylinder((x, 0, 0), (x, base_h, 0), reach, reach * rng.uniform(0.6, 1.0)))
    else:
        half_w = rng.uniform(0.025, 0.045)
        parts.append(_box((x - reach, 0, -half_w), (x + reach, base_h, half_w)))
        parts.append(_box((x - half_w, 0, -reach), (x + half_w, base_h, reach)))
    return parts


def _table_trestle(rng: np.random.Generator, width: float, depth: float, top: float) -> list[Manifold]:
    """Two end frames (foot, upright, cleat) joined by a stretcher beam."""
    x_end = width / 2 - rng.uniform(0.08, 0.2)
    half_t = rng.uniform(0.02, 0.04)
    half_d = depth * rng.uniform(0.3, 0.45)
    upright = rng.uniform(0.04, 0.1)
    foot_h = rng.uniform(0.04, 0.07)
    cleat_h = rng.uniform(0.03, 0.06)
    parts = []
    for x in (-x_end, x_end):
        parts.append(_box((x - 1.5 * half_t, 0, -half_d), (x + 1.5 * half_t, foot_h, half_d)))
        parts.append(_box((x - half_t, foot_h - _OVERLAP, -upright), (x + half_t, top + _OVERLAP, upright)))
        parts.append(_box((x - half_t, top - cleat_h, -half_d), (x + half_t, top + _OVERLAP, half_d)))
    beam_y = rng.uniform(0.2, 0.5) * top
    beam = rng.uniform(0.02, 0.035)
    parts.append(_box((-x_end, beam_y - beam, -beam), (x_end, beam_y + beam, beam)))
    return parts


def _table(rng: np.random.Generator) -> list[Manifold]:
    """Table: round or rectangular top on legs, one or two pedestals, or a trestle."""
    height = rng.uniform(0.45, 0.8)
    thick = rng.uniform(0.025, 0.06)
    top = height - thick
    if rng.random() < 0.4:
        radius = rng.uniform(0.35, 0.65)
        parts = [_cylinder((0, top, 0), (0, height, 0), radius)]
        if rng.random() < 0.5:
            n_legs = int(rng.integers(3, 5))
            ring = radius * rng.uniform(0.55, 0.75)
            angles = 2 * np.pi * np.arange(n_legs) / n_legs + np.pi / n_legs
            feet = [(ring * np.cos(a), ring * np.sin(a)) for a in angles]
            parts += _table_legs(rng, feet, top, None)
        else:
            parts += _table_pedestal(rng, 0.0, top, radius * rng.uniform(0.45, 0.7))
        return parts

    width = rng.uniform(0.8, 1.8)
    depth = rng.uniform(0.55, min(1.0, width))
    parts = [_box((-width / 2, top, -depth / 2), (width / 2, height, depth / 2))]
    support = rng.choice(["legs", "trestle", "pedestal"], p=[0.55, 0.3, 0.15])
    if support == "legs":
        hx = width / 2 - rng.uniform(0.04, 0.12)
        hz = depth / 2 - rng.uniform(0.04, 0.1)
        feet = [(sx * hx, sz * hz) for sx in (-1, 1) for sz in (-1, 1)]
        parts += _table_legs(rng, feet, top, (hx, hz))
    elif support == "trestle":
        parts += _table_trestle(rng, width, depth, top)
    else:
        reach = depth * rng.uniform(0.3, 0.45)
        centres = [-width / 4, width / 4] if width > 1.2 else [0.0]
        for x in centres:
            parts += _table_pedestal(rng, x, top, reach)
    return parts


# --------------------------------------------------------------------------- lamp


def _lamp_shade(rng: np.random.Generator, center: np.ndarray, radius: float, height: float) -> Manifold:
    """Closed solid shade centred on ``center``: a cone frustum, a drum or a dome."""
    bottom = center - [0, height / 2, 0]
    top = center + [0, height / 2, 0]
    style = rng.choice(["cone", "drum", "dome"], p=[0.5, 0.3, 0.2])
    if style == "cone":
        return _cylinder(bottom, top, radius, radius * rng.uniform(0.4, 0.75))
    if style == "drum":
        return _cylinder(bottom, top, radius, radius * rng.uniform(0.85, 1.0))
    dome = Manifold.sphere(radius, 2 * _SPHERE_SEGMENTS).scale((1.0, height / radius, 1.0))
    return dome.trim_by_plane((0.0, 1.0, 0.0), 0.0).translate(tuple(bottom))


def _lamp(rng: np.random.Generator) -> list[Manifold]:
    """Desk or floor lamp: base, straight or bent pole, solid shade around the pole tip."""
    scale = rng.uniform(1.5, 1.8) if rng.random() < 0.4 else 1.0  # floor lamp vs desk lamp
    height = rng.uniform(0.4, 0.65) * scale**2
    base_r = rng.uniform(0.07, 0.13) * scale
    base_h = rng.uniform(0.02, 0.045) * scale
    pole_r = rng.uniform(0.007, 0.013) * scale
    shade_r = rng.uniform(0.08, 0.14) * scale
    shade_h = shade_r * rng.uniform(0.8, 1.5)

    base_style = rng.choice(["disc", "square", "dome"])
    if base_style == "disc":
        parts = [_cylinder((0, 0, 0), (0, base_h, 0), base_r)]
    elif base_style == "square":
        parts = [_box((-base_r, 0, -base_r), (base_r, base_h, base_r))]
    else:
        parts = [_cylinder((0, 0, 0), (0, 2 * base_h, 0), base_r, base_r * rng.uniform(0.25, 0.5))]

    foot = np.array([0.0, base_h / 2, 0.0])
    tip = np.array([0.0, height - shade_h / 2, 0.0])
    if rng.random() < 0.4:  # bent pole: vertical segment, knuckle, slanted segment reaching forward
        bend = np.array([0.0, tip[1] * rng.uniform(0.45, 0.75), 0.0])
        tip[2] = (tip[1] - bend[1]) * rng.uniform(0.4, 1.2)
        parts += [_cylinder(foot, bend, pole_r), _sphere(bend, 1.6 * pole_r), _cylinder(bend, tip, pole_r)]
    else:
        parts.append(_cylinder(foot, tip, pole_r))
    parts.append(_lamp_shade(rng, tip, shade_r, shade_h))
    return parts


# --------------------------------------------------------------------------- shelf


def _shelf(rng: np.random.Generator) -> list[Manifold]:
    """Bookshelf: two side panels, top, bottom and 1-4 shelves, optional back panel, divider and feet."""
    width = rng.uniform(0.5, 1.2)
    height = rng.uniform(0.6, 1.8)
    depth = rng.uniform(0.25, 0.4)
    t = rng.uniform(0.015, 0.03)
    lift = rng.uniform(0.05, 0.12) if rng.random() < 0.4 else 0.0
    x_in = width / 2 - t

    parts = [
        _box((-width / 2, lift, -depth / 2), (-x_in, height, depth / 2)),
        _box((x_in, lift, -depth / 2), (width / 2, height, depth / 2)),
    ]
    n_shelves = int(rng.integers(1, 5))
    for y in np.linspace(lift, height - t, n_shelves + 2):
        parts.append(_box((-x_in - _OVERLAP, y, -depth / 2), (x_in + _OVERLAP, y + t, depth / 2)))
    if rng.random() < 0.5:
        back_t = max(0.5 * t, 0.008)
        parts.append(_box((-x_in - _OVERLAP, lift, -depth / 2), (x_in + _OVERLAP, height, -depth / 2 + back_t)))
    if width > 0.8 and rng.random() < 0.5:
        parts.append(_box((-t / 2, lift + t - _OVERLAP, -depth / 2), (t / 2, height - t + _OVERLAP, depth / 2)))
    if lift > 0:
        foot_r = max(t, 0.02)
        for sx in (-1, 1):
            for sz in (-1, 1):
                x, z = sx * (width / 2 - t / 2), sz * (depth / 2 - foot_r)
                parts.append(_cylinder((x, 0, z), (x, lift + _OVERLAP, z), foot_r))
    return parts


# --------------------------------------------------------------------------- public API

_BUILDERS: dict[str, Callable[[np.random.Generator], list[Manifold]]] = {
    "chair": _chair,
    "table": _table,
    "lamp": _lamp,
    "shelf": _shelf,
}


def _check_family(family: str) -> None:
    """Raises ``ValueError`` if ``family`` is not one of :data:`FAMILIES`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown shape family {family!r}; known families: {', '.join(FAMILIES)}")


def make_shape(family: str, rng: np.random.Generator) -> trimesh.Trimesh:
    """Builds one random shape of ``family`` as a single watertight, outward-oriented mesh.

    The parts drawn by the family's builder are merged with a manifold3d boolean
    union.  Raises ``ValueError`` for an unknown family and ``RuntimeError`` if
    the union is not a single positive-volume solid (which would be a bug here).
    """
    _check_family(family)
    solid = Manifold.batch_boolean(_BUILDERS[family](rng), OpType.Add)
    if len(solid.decompose()) != 1 or solid.volume() <= 0:
        raise RuntimeError(f"procedural {family} is not a single solid ({len(solid.decompose())} components)")
    mesh_gl = solid.to_mesh64()
    return trimesh.Trimesh(
        vertices=np.asarray(mesh_gl.vert_properties, dtype=np.float64)[:, :3],
        faces=np.asarray(mesh_gl.tri_verts, dtype=np.int64),
        process=False,
    )


def _write_ply(mesh: trimesh.Trimesh, path: Path) -> None:
    """Write ``mesh`` as binary PLY to ``path``, whole or not at all (``sdf_autodec.atomic``)."""
    data = mesh.export(file_type="ply", encoding="binary", vertex_normal=False)
    atomic_write_bytes(path, lambda f: f.write(data))


def generate_dataset(output_dir: str | Path, cfg: ProceduralConfig) -> list[Path]:
    """Writes ``<output_dir>/<family>/<family>_<NNN>.ply`` (NNN = zero-padded 3-digit index).

    Shape ``i`` of ``family`` comes from ``np.random.default_rng([cfg.seed,
    FAMILIES.index(family), i])``, so it is independent of the other requested
    families and of ``shapes_per_family``; the same seed gives byte-identical
    files.  All family names are checked before anything is written.  Returns
    the written paths in sorted order.
    """
    for family in cfg.families:
        _check_family(family)
    if cfg.shapes_per_family < 0:
        raise ValueError(f"shapes_per_family must be >= 0, got {cfg.shapes_per_family}")

    root = Path(output_dir)
    paths = []
    for family in dict.fromkeys(cfg.families):
        folder = root / family
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(cfg.shapes_per_family):
            rng = np.random.default_rng([cfg.seed, FAMILIES.index(family), i])
            path = folder / f"{family}_{i:03d}.ply"
            _write_ply(make_shape(family, rng), path)
            paths.append(path)
    return sorted(paths)
