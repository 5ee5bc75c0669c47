"""Tests for the procedural furniture generator (data_prep.procedural)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from data_prep.procedural import FAMILIES, ProceduralConfig, generate_dataset, make_shape


def _shape(family: str, *seed: int) -> trimesh.Trimesh:
    return make_shape(family, np.random.default_rng(list(seed)))


def test_families_include_the_required_ones() -> None:
    assert {"chair", "table", "lamp"} <= set(FAMILIES)
    assert len(set(FAMILIES)) == len(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", range(6))
def test_shape_is_single_watertight_solid(family: str, seed: int) -> None:
    mesh = _shape(family, seed, 123)
    assert np.isfinite(mesh.vertices).all()
    assert mesh.is_watertight
    assert mesh.is_winding_consistent
    assert mesh.volume > 0
    assert len(mesh.split(only_watertight=False)) == 1
    assert 12 <= len(mesh.faces) <= 20_000
    # Standing on the floor (y = 0, Y up), plausible furniture size in metres.
    assert mesh.bounds[0][1] == pytest.approx(0.0, abs=0.02)
    assert 0.1 < mesh.extents.max() < 3.0
    assert mesh.extents.min() > 0.05


def test_same_seed_gives_identical_mesh() -> None:
    for family in FAMILIES:
        a, b = _shape(family, 7, 1), _shape(family, 7, 1)
        np.testing.assert_array_equal(a.vertices, b.vertices)
        np.testing.assert_array_equal(a.faces, b.faces)


def test_different_seeds_give_different_shapes() -> None:
    for family in FAMILIES:
        a, b = _shape(family, 7, 1), _shape(family, 7, 2)
        assert a.vertices.shape != b.vertices.shape or not np.allclose(a.vertices, b.vertices)


@pytest.mark.parametrize("family", FAMILIES)
def test_variation_within_family(family: str) -> None:
    meshes = [_shape(family, 0, i) for i in range(10)]
    extents = np.array([m.extents for m in meshes])
    # Proportions differ: every pair of shapes has noticeably different bounding boxes.
    gaps = np.abs(extents[:, None, :] - extents[None, :, :]).max(axis=-1)
    assert gaps[~np.eye(len(meshes), dtype=bool)].min() > 1e-3
    # Part choices differ too, which shows up as different face counts.
    assert len({len(m.faces) for m in meshes}) >= 3


def test_topology_varies_within_family() -> None:
    chairs = [_shape("chair", 0, i) for i in range(16)]
    # A horizontal cut below the seat meets one pedestal column or four legs.
    supports = {len(m.section(plane_origin=(0, 0.3, 0), plane_normal=(0, 1, 0)).discrete) for m in chairs}
    assert supports == {1, 4}
    # Armrests are the only parts above the seat in the front half (+Z).
    has_arms = {bool(((m.vertices[:, 1] > 0.55) & (m.vertices[:, 2] > 0)).any()) for m in chairs}
    assert has_arms == {True, False}
    # Bent lamp poles carry the shade forward (+Z); straight ones keep it centred.
    shade_forward = []
    for i in range(16):
        v = _shape("lamp", 0, i).vertices
        top = v[v[:, 1] > 0.9 * v[:, 1].max()]
        shade_forward.append((top[:, 2].max() + top[:, 2].min()) / 2 > 0.02)
    assert any(shade_forward) and not all(shade_forward)


def test_generate_dataset_writes_expected_files(tmp_path) -> None:
    cfg = ProceduralConfig(families=["lamp", "chair"], shapes_per_family=2, seed=3)
    paths = generate_dataset(tmp_path / "out", cfg)
    expected = sorted(
        tmp_path / "out" / family / f"{family}_{i:03d}.ply" for family in ("chair", "lamp") for i in range(2)
    )
    assert paths == expected
    assert sorted(p for p in (tmp_path / "out").rglob("*") if p.is_file()) == expected  # no temp files left
    for path in paths:
        mesh = trimesh.load(path, force="mesh")
        assert mesh.is_watertight
        assert mesh.is_winding_consistent
        assert mesh.volume > 0


def test_generate_dataset_is_byte_identical_and_independent_of_request(tmp_path) -> None:
    first = generate_dataset(tmp_path / "a", ProceduralConfig(["chair", "table"], shapes_per_family=2, seed=5))
    again = generate_dataset(tmp_path / "b", ProceduralConfig(["table"], shapes_per_family=3, seed=5))
    other = generate_dataset(tmp_path / "c", ProceduralConfig(["table"], shapes_per_family=1, seed=6))
    tables_a = [p for p in first if p.parent.name == "table"]
    for p, q in zip(tables_a, again[:2]):
        assert p.name == q.name
        assert p.read_bytes() == q.read_bytes()
    assert other[0].read_bytes() != tables_a[0].read_bytes()


def test_unknown_family_raises(tmp_path) -> None:
    with pytest.raises(ValueError, match="sofa.*chair"):
        make_shape("sofa", np.random.default_rng(0))
    with pytest.raises(ValueError, match="sofa"):
        generate_dataset(tmp_path, ProceduralConfig(families=["chair", "sofa"], shapes_per_family=1))
    assert not any(tmp_path.iterdir())  # nothing written before validation


def test_config_defaults() -> None:
    cfg = ProceduralConfig()
    assert cfg.families == list(FAMILIES)
    assert cfg.shapes_per_family == 8
    assert cfg.seed == 0
    cfg.families.append("x")
    assert ProceduralConfig().families == list(FAMILIES)
