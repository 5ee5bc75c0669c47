"""The domain-free training loop parts (core.training, core.rundir): one schedule, the epoch runner,
the run folder's checkpoint rotation and metrics."""

from __future__ import annotations

import json

import pytest
import torch

from sdf_autodec.core.checkpoint import load_checkpoint
from sdf_autodec.core.rundir import RunDir, read_metrics
from sdf_autodec.core.training import epoch_batches, linear_ramp, lr_factor, parse_budget, run_epoch, schedule_epoch, set_learning_rates


def test_the_one_schedule_is_deepsdfs_step_schedule_of_the_1_based_epoch():
    official = lambda e, n: 0.5 ** (e // n)  # noqa: E731  (DeepSDF's StepLearningRateSchedule, e counted from 1)
    for n in (1, 3, 12, 500):
        assert [lr_factor(epoch, n) for epoch in range(3 * n + 2)] == [official(epoch + 1, n) for epoch in range(3 * n + 2)]
    assert lr_factor(11, 12) == 0.5 and lr_factor(10, 12) == 1.0  # the 12th epoch (0-based 11) runs at half rate
    assert lr_factor(10_000, 0) == 1.0 and lr_factor(5, -1) == 1.0
    assert [linear_ramp(e, 4) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0] and linear_ramp(0, 0) == 1.0
    assert schedule_epoch(0.0, 100.0, 2000) == -1.0 and schedule_epoch(50.0, 100.0, 2000) == 999.0 and schedule_epoch(500.0, 100.0, 2000) == 1999.0
    with pytest.raises(ValueError, match="budget"):
        parse_budget("soon")


def test_epoch_batches_visit_every_instance_once_in_a_seeded_order():
    a = epoch_batches(10, 4, torch.Generator().manual_seed(3))
    b = epoch_batches(10, 4, torch.Generator().manual_seed(3))
    assert [len(x) for x in a] == [4, 4, 2] and all(torch.equal(x, y) for x, y in zip(a, b))
    assert sorted(torch.cat(a).tolist()) == list(range(10))


def test_run_epoch_weighs_each_step_by_its_batch_and_stops_when_told():
    batches = [torch.arange(4), torch.arange(4, 8), torch.arange(8, 10)]
    seen = []

    def step(i, batch, data):
        seen.append((i, batch.tolist(), data))
        return {"loss": float(i + 1)}

    stats = run_epoch(batches, step, fetch=lambda b: int(b.sum()))
    assert [s[2] for s in seen] == [6, 22, 17] and stats.steps == 3 and stats.instances == 10 and not stats.stopped
    assert stats.means["loss"] == pytest.approx((1 * 4 + 2 * 4 + 3 * 2) / 10)  # the mean over instances, not over steps
    stopped = run_epoch(batches, step, before_step=lambda i: i < 1)
    assert stopped.steps == 1 and stopped.instances == 4 and stopped.stopped and stopped.means == {"loss": 1.0}
    assert run_epoch(batches, step, before_step=lambda i: False).means == {}


def test_prefetch_draws_the_same_numbers_in_the_same_order():
    def draws(prefetch: bool) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        batches = epoch_batches(12, 5, generator)
        out = []
        run_epoch(batches, lambda i, b, data: out.append(data) or {}, fetch=lambda b: torch.rand(len(b), generator=generator), prefetch=prefetch)
        return out

    assert all(torch.equal(a, b) for a, b in zip(draws(False), draws(True), strict=True))


def test_set_learning_rates_scales_each_group():
    opt = torch.optim.Adam([{"params": [torch.zeros(1, requires_grad=True)]}, {"params": [torch.zeros(1, requires_grad=True)]}], lr=1.0)
    set_learning_rates(opt, (2e-3, 4e-3), 0.5)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 2e-3]
    with pytest.raises(ValueError):
        set_learning_rates(opt, (1e-3,), 1.0)


def _payload(epoch: int) -> dict:
    return {"kind": "test", "config": {}, "epoch": epoch, "decoder": {"w": torch.full((2,), float(epoch))}, "latents": torch.zeros(1, 2), "instance_ids": ["a"]}


def test_run_dir_rotates_snapshots_keeps_latest_and_truncates_metrics_on_resume(tmp_path):
    run = RunDir(tmp_path / "run")
    run.prepare()
    for epoch in (10, 20, 30):
        run.save(_payload(epoch), epoch, keep_last=2)
        run.append_metrics({"epoch": epoch, "loss": 1.0 / epoch})
    assert sorted(p.name for p in run.checkpoints.glob("epoch_*.pt")) == ["epoch_000020.pt", "epoch_000030.pt"]
    assert load_checkpoint(run.latest)["epoch"] == 30
    with run.metrics.open("a") as f:
        f.write('{"epoch": 40, "lo')  # a line cut short by a kill
    assert [r["epoch"] for r in read_metrics(run.metrics)] == [10, 20, 30]
    assert [r["epoch"] for r in run.metrics_until(20)] == [10, 20]
    assert [json.loads(line)["epoch"] for line in run.metrics.read_text().splitlines()] == [10, 20]
    (run.checkpoints / ".latest.k2j4h5g6.tmp.pt").write_bytes(b"half")  # what atomic_write leaves when killed
    run.prepare()
    assert not list(run.checkpoints.glob(".*.tmp.pt"))
    run.save(_payload(1), 1, keep_last=0)
    assert len(list(run.checkpoints.glob("epoch_*.pt"))) == 2  # keep_last=0 writes no snapshot and deletes none
    assert json.loads(run.write_json("config.json", {"a": 1}).read_text()) == {"a": 1}
    assert read_metrics(tmp_path / "absent.jsonl") == []


def test_the_analytic_factories_give_exact_sdfs_and_visible_halves(tmp_path):
    """tests.factories' analytic dataset (what benchmarks/train.py trains on) holds exact sphere
    distances with the right signs, and its scans (benchmarks/complete.py's) the halves their camera sees."""
    import numpy as np

    from sdf_autodec.geometry.analytic import sphere_sdf
    from sdf_autodec.storage.layout import DatasetLayout, read_sdf_samples, read_split
    from tests.factories import analytic_scan, analytic_sdf_dataset

    root = analytic_sdf_dataset(tmp_path / "data", shapes=2, samples=500)
    layout = DatasetLayout(root)
    keys = read_split(layout.split("train"))
    assert [k.cls for k in keys] == ["sphere", "box"]
    pos, neg = read_sdf_samples(layout.sdf(keys[0]))
    rows = np.concatenate([pos, neg])
    assert len(rows) == 500 and (pos[:, 3] > 0).all() and (neg[:, 3] <= 0).all()
    radius = np.median(np.linalg.norm(rows[:, :3], axis=1) - rows[:, 3])  # |p| - sdf = r for a sphere
    np.testing.assert_allclose(rows[:, 3], sphere_sdf(rows[:, :3], radius), atol=1e-5)
    scan = analytic_scan(0, np.random.default_rng(0))
    assert np.all(np.sum(scan.points * (scan.camera_origin - scan.points), axis=1) > 0) and 1000 < len(scan.points) < 20000
