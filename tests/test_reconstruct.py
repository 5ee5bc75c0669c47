"""``reconstruct`` (DeepSDF's unknown-shape protocol), its reference rows, its bad input, and
training by time budget (the schedule laid over the budget, under a fake clock)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, tiny_train_config
from sdf_autodec.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.storage.layout import DatasetError, DatasetLayout, read_latents, read_split, write_sdf_samples
from sdf_autodec.shapes.mesh_codes import MeshRunConfig, mesh_run
from sdf_autodec.shapes.evaluate import EvalConfig, evaluate
from sdf_autodec.shapes.mesh import MeshConfig
from sdf_autodec.shapes.recipes import apply_preset, budget_recipe, preset_values
from sdf_autodec.shapes.reconstruct import ReconstructConfig, reconstruct
from sdf_autodec.core.training import lr_factor, parse_budget, schedule_epoch
from sdf_autodec.shapes.train import TrainConfig, code_reg_at, train

FAST_FIT = FitConfig(iterations=150, lr=1e-2, lr_drop_at=0.7)


def _recon(run: Path, data: Path, out: Path, **kw) -> dict:
    cfg = ReconstructConfig(run=str(run), data=str(data), output=str(out), fit=kw.pop("fit", FAST_FIT), mesh=MeshConfig(resolution=32), num_points=2000, progress=False, **kw)
    return reconstruct(cfg)


def test_reconstruct_recovers_a_training_shape_from_its_own_samples(recon_run, data_dir, tmp_path):
    """Fitting a fresh code to a training shape's own samples gets (within a small factor) the
    quality of the training code itself, and far beyond the mean shape."""
    report = _recon(recon_run, data_dir, tmp_path / "recon", split="all", init="random")
    train_ids = [k.id for k in read_split(DatasetLayout(data_dir).split("all"))]
    assert sorted(report["shapes"]) == sorted(train_ids) and not report["failed"]
    assert all(r["in_training_set"] and r["status"] == "ok" for r in report["shapes"].values())
    assert all(0.0 <= r["cleaned"]["area_removed"] < 0.5 for r in report["shapes"].values())  # clean=components, the default
    mesh_run(MeshRunConfig(run=str(recon_run), output=str(tmp_path / "train_meshes"), mesh=MeshConfig(resolution=32), progress=False))
    trained = evaluate(EvalConfig(pred=str(tmp_path / "train_meshes"), gt=str(data_dir), output=str(tmp_path / "m.json"), num_points=2000, iou_points=0, progress=False))
    ours = report["methods"]["ours"]["normalized"]
    for sid in train_ids:
        assert ours["shapes"][sid]["chamfer"] < 3.0 * trained["shapes"][sid]["chamfer"] + 2e-3, sid
    assert ours["median"]["chamfer"] < 0.5 * report["methods"]["mean_shape"]["normalized"]["median"]["chamfer"]
    # the meshes, the codes and the report are on disk, in the layout the module docstring gives
    names, codes = read_latents(tmp_path / "recon" / "latents.npz")
    assert sorted(names) == sorted(train_ids) and codes.shape == (len(train_ids), 8)
    assert all((tmp_path / "recon" / f"{sid}.ply").is_file() for sid in train_ids)
    assert (tmp_path / "recon" / "references" / "mean_shape.ply").is_file()
    assert json.loads((tmp_path / "recon" / "reconstruction.json").read_text())["seconds_per_shape"]["fit"] > 0
    header = (tmp_path / "recon" / "reconstruction.csv").read_text().splitlines()[0].split(",")
    assert "chamfer.normalized" in header and "chamfer.source" in header


def test_source_frame_chamfer_is_the_unit_sphere_one_rescaled(recon_run, data_dir, tmp_path):
    report = _recon(recon_run, data_dir, tmp_path / "recon", split="test", init="nearest", references=False)
    layout = DatasetLayout(data_dir)
    from sdf_autodec.storage.layout import read_normalization

    rows = report["methods"]["ours"]
    assert set(report["methods"]) == {"ours"}
    for key in read_split(layout.split("test")):
        scale = read_normalization(layout.normalization(key)).scale
        unit, source = rows["normalized"]["shapes"][key.id], rows["source"]["shapes"][key.id]
        assert source["chamfer"] == pytest.approx(unit["chamfer"] / scale**2, rel=1e-6)
        assert source["fscore@1%"] == pytest.approx(unit["fscore@1%"])


def test_reference_rows_on_a_toy_model(recon_run, data_dir, tmp_path):
    """On training shapes, the oracle is the shape itself (its own surface samples, Chamfer 0), the
    retrieval row finds each shape's own code, and the mean shape is one mesh scored against all."""
    report = _recon(recon_run, data_dir, tmp_path / "recon", split="all", fit=FitConfig(iterations=5))
    methods = report["methods"]
    assert set(methods) == {"ours", "mean_shape", "retrieval", "oracle"}
    for sid, entry in report["shapes"].items():
        oracle = methods["oracle"]["normalized"]["shapes"][sid]
        assert oracle["training_shape"] == sid and oracle["chamfer"] < 1e-9 and oracle["fscore@1%"] == 1.0
        assert entry["retrieved"] == sid  # the lowest loss on a training shape's samples is its own code
    mean_rows = methods["mean_shape"]["normalized"]["shapes"]
    assert len(mean_rows) == len(report["shapes"]) and len({r["chamfer"] for r in mean_rows.values()}) == len(mean_rows)
    assert methods["retrieval"]["normalized"]["median"]["chamfer"] < methods["mean_shape"]["normalized"]["median"]["chamfer"]


def test_a_shape_without_inside_samples_fails_alone(recon_run, data_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)
    layout = DatasetLayout(data)
    keys = read_split(layout.split("test"))
    with np.load(layout.sdf(keys[0])) as d:
        pos = d["pos"]
    write_sdf_samples(layout.sdf(keys[0]), pos[:, :3], pos[:, 3])  # outside samples only
    report = _recon(recon_run, data, tmp_path / "recon", split="test", references=False)
    assert keys[0].id in report["failed"] and "no negative SDF samples" in report["failed"][keys[0].id]
    assert str(layout.sdf(keys[0])) in report["failed"][keys[0].id]
    assert [k.id for k in keys[1:]] == sorted(report["shapes"]) and all(r["status"] == "ok" for r in report["shapes"].values())


def test_bad_input_is_one_line(recon_run, data_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no SDF samples"):
        _recon(recon_run, empty, tmp_path / "a")
    other = tmp_path / "other.pt"
    payload = load_checkpoint(Path(recon_run) / "checkpoints" / "latest.pt")
    save_checkpoint(other, {**payload, "kind": "images"})
    with pytest.raises(CheckpointError, match="'images' checkpoint, expected 'shapes'"):
        _recon(other, data_dir, tmp_path / "b")
    with pytest.raises(ValueError, match="init="):
        _recon(recon_run, data_dir, tmp_path / "c", init="best")
    with pytest.raises(ValueError, match="far_share="):
        _recon(recon_run, data_dir, tmp_path / "d", far_share=1.0)
    with pytest.raises(ValueError, match="clean='all'"):
        _recon(recon_run, data_dir, tmp_path / "e", clean="all")


def test_far_share_draws_that_share_from_far_samples():
    from sdf_autodec.shapes.reconstruct import _draw, _Shape

    g = torch.Generator().manual_seed(0)
    pos = torch.tensor([[0.0, 0, 0, 0.01], [0, 0, 0, 0.2]])
    neg = torch.tensor([[0.0, 0, 0, -0.01]])
    shape = _Shape(None, pos, neg, torch.cat([pos, neg])[torch.cat([pos, neg])[:, 3].abs() >= 0.05])
    rows = _draw(shape, 100, g, far_share=0.5)
    assert rows.shape == (100, 4) and (rows[50:, 3] == 0.2).all() and (rows[:25, 3] > 0).all() and (rows[25:50, 3] < 0).all()
    plain = _draw(shape, 100, torch.Generator().manual_seed(0))
    assert (plain[:50, 3] > 0).all() and (plain[50:, 3] < 0).all()  # DeepSDF's draw: half and half


def test_cli_reconstruct_and_budget_errors(recon_run, data_dir, tmp_path):
    env_cmd = [sys.executable, "-m", "sdf_autodec.cli.main"]
    ok = subprocess.run(
        [*env_cmd, "reconstruct", f"run={recon_run}", f"data={data_dir}", "split=test", f"output={tmp_path / 'r'}", "fit=fast",
         "fit.iterations=20", "mesh.resolution=24", "num_points=1000", "progress=false"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "median chamfer" in ok.stdout and "oracle" in ok.stdout
    assert json.loads((tmp_path / "r" / "reconstruction.json").read_text())["config"]["init"] == "nearest"  # fit=fast's start
    bad = subprocess.run([*env_cmd, "reconstruct", f"run={recon_run}", f"data={tmp_path}", f"output={tmp_path / 'x'}"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "no SDF samples" in bad.stderr
    for budget in ("0", "abc"):
        r = subprocess.run([*env_cmd, "train", f"data={data_dir}", f"run={tmp_path / 'b'}", f"budget={budget}"], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and f"budget='{budget}'" in r.stderr, r.stderr
        assert not (tmp_path / "b").exists()


def test_parse_budget():
    assert parse_budget("90s") == 90 and parse_budget("30m") == 1800 and parse_budget("2h") == 7200
    assert parse_budget("1.5h") == 5400 and parse_budget("600") == 600 and parse_budget(" 5 m ") == 300
    for bad in ("0", "0s", "abc", "-5m", "5d", "", "m"):
        with pytest.raises(ValueError, match="budget="):
            parse_budget(bad)


class FakeClock:
    """Seconds that advance by ``tick`` at every reading."""

    def __init__(self, tick: float):
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def test_budget_schedule_spans_the_budget(data_dir, tmp_path):
    """Under a fake clock, a 100 s budget with a 40-epoch schedule (halvings every 10) starts at the
    full rate, is at a quarter of it halfway, at an eighth in its last quarter, and stops at the budget."""
    cfg = tiny_train_config(data_dir, tmp_path / "run", epochs=40, lr_halve_every=10, code_reg_rampup_epochs=20, checkpoint_every=1000, budget="100s")
    train(cfg, clock=FakeClock(0.25))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    record = json.loads((tmp_path / "run" / "budget.json").read_text())
    assert 100.0 <= record["elapsed_seconds"] <= 101.0 and record["epochs_done"] == rows[-1]["epoch"] == len(rows)
    assert record["schedule"]["lr_halved_at_budget_fractions"] == [0.25, 0.5, 0.75]
    assert rows[0]["lr_decoder"] == cfg.lr_decoder and rows[0]["code_reg_weight"] < cfg.code_reg_weight
    for r in rows:  # the rate each epoch ended with is the schedule's at the share of the budget then spent
        p = r["elapsed_seconds"] / 100.0
        assert r["lr_decoder"] in {cfg.lr_decoder * 0.5**k for k in range(4)}
        if 0.05 < p < 0.2:
            assert r["lr_decoder"] == cfg.lr_decoder
        if 0.55 < p < 0.7:
            assert r["lr_decoder"] == cfg.lr_decoder * 0.25 and r["code_reg_weight"] == cfg.code_reg_weight
        if p > 0.8:
            assert r["lr_decoder"] == cfg.lr_decoder * 0.125
    assert rows[-1]["lr_decoder"] == record["last_step_lr_decoder"] == cfg.lr_decoder * 0.125
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["epoch"] == len(rows)
    # a re-run resumes the spent budget's clock: nothing more to do, the same checkpoint
    before = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    train(cfg, clock=FakeClock(0.25))
    after = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert after["epoch"] == before["epoch"] and torch.equal(after["latents"], before["latents"])


def test_schedule_epoch_maps_budget_fractions_onto_epochs():
    cfg = TrainConfig(epochs=2000, lr_halve_every=500, code_reg_rampup_epochs=100)
    at = lambda fraction: schedule_epoch(fraction * 1800, 1800, cfg.epochs)  # noqa: E731
    assert lr_factor(at(0.0), cfg.lr_halve_every) == 1.0
    assert lr_factor(at(0.2499), cfg.lr_halve_every) == 1.0
    assert lr_factor(at(0.2501), cfg.lr_halve_every) == 0.5
    assert lr_factor(at(0.9), cfg.lr_halve_every) == 0.125
    assert code_reg_at(at(0.0), cfg) == 0.0
    assert code_reg_at(at(0.06), cfg) == cfg.code_reg_weight


def test_budget_recipe_keeps_what_the_user_gave():
    recipe = budget_recipe("cpu")
    values = preset_values(recipe.name)
    given = TrainConfig(data="d", run="r", budget="30m", scenes_per_batch=3, lr_codes=0.123)
    given.model.depth = 3
    cfg = apply_preset(given, recipe.name, keep={"scenes_per_batch", "model.depth", "lr_codes"})
    assert (cfg.scenes_per_batch, cfg.model.depth, cfg.lr_codes) == (3, 3, 0.123)  # kept as given
    assert cfg.model.width == values["model"]["width"] and cfg.lr_decoder == values["lr_decoder"] and cfg.epochs == values["epochs"]
    assert cfg.budget == "30m" and isinstance(cfg, TrainConfig)
    with pytest.raises(ValueError, match="no training recipe"):
        preset_values("nope")


def test_cube_rotations_and_posed_samples(data_dir):
    """24 distinct proper rotations, identity first; a posed instance's samples are its shape's,
    turned, with the same SDF; ids round-trip."""
    from sdf_autodec.geometry.frames import cube_rotations, instance_id, parse_instance_id
    from sdf_autodec.shapes.dataset import PackedSdfSamples, resolve_split
    from sdf_autodec.shapes.train import _posed_rows

    r = cube_rotations()
    assert r.shape == (24, 3, 3) and np.array_equal(r[0], np.eye(3))
    assert np.allclose(np.linalg.det(r), 1.0) and len({m.tobytes() for m in r}) == 24
    assert np.allclose(r @ r.transpose(0, 2, 1), np.eye(3))
    assert parse_instance_id(instance_id("chair_01", 5)) == ("chair_01", 5) and parse_instance_id("a@rb") == ("a@rb", 0)
    store = PackedSdfSamples(data_dir, resolve_split(data_dir, "all"))
    rot = torch.from_numpy(r).float()
    instances = torch.tensor([0, 1, 24 + 7])  # shape 0 as given, shape 0 in pose 1, shape 1 in pose 7
    posed = _posed_rows(store, rot, instances, 64, torch.Generator().manual_seed(0), None, False)
    plain = store.sample_rows(instances // 24, 64, torch.Generator().manual_seed(0))
    assert torch.equal(posed[0], plain[0]) and torch.equal(posed[..., 3], plain[..., 3])
    assert torch.allclose(posed[1, :, :3], plain[1, :, :3] @ rot[1].T) and torch.allclose(posed[2, :, :3], plain[2, :, :3] @ rot[7].T)
