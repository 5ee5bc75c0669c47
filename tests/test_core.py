"""The domain-free core and the decoder: shapes, prior, batched fitting, checkpoints."""

import pytest
import torch

from sdf_autodec.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sdf_autodec.core.fitting import FitConfig, fit_latents, initial_codes
from sdf_autodec.core.latents import LatentTable
from sdf_autodec.core.observations import Observations, instance_data_loss
from sdf_autodec.core.prior import code_regulariser
from sdf_autodec.nn.mlp import CoordinateMLP, DecoderConfig
from sdf_autodec.nn.registry import build_decoder
from sdf_autodec.optional import MissingDependency
from sdf_autodec.shapes.loss import clamped_l1

SMALL = DecoderConfig(latent_size=8, depth=4, width=32, skip_layers=[2], dropout=0.0)


def test_decoder_shapes_and_deepsdf_preset_size():
    dec = CoordinateMLP(SMALL)
    out = dec(torch.zeros(3, 8), torch.zeros(3, 5, 3))
    assert out.shape == (3, 5, 1) and (out.abs() < 1).all()  # tanh output
    deepsdf = CoordinateMLP(DecoderConfig())
    # 8 hidden layers of 512, latent+xyz (259) re-concatenated at layer 4: the paper's ~1.8M parameters
    assert 1.7e6 < sum(p.numel() for p in deepsdf.parameters()) < 1.9e6
    assert deepsdf.hidden[3].weight.shape[0] == 512 - 259
    with pytest.raises(ValueError, match="codes have shape"):
        dec(torch.zeros(2, 8), torch.zeros(3, 5, 3))


def test_impossible_decoder_configs_are_refused():
    with pytest.raises(ValueError, match="skip_layers"):
        CoordinateMLP(DecoderConfig(depth=3, skip_layers=[5]))
    with pytest.raises(ValueError, match="width"):
        CoordinateMLP(DecoderConfig(latent_size=64, width=32, skip_layers=[1], depth=2))
    with pytest.raises(ValueError, match="unknown decoder backend"):
        build_decoder(DecoderConfig(backend="jax"))


def test_tcnn_backend_without_cuda_or_package_is_one_clear_line():
    with pytest.raises((MissingDependency, RuntimeError)) as e:
        build_decoder(DecoderConfig(backend="tcnn"))
    assert "\n" not in str(e.value) and "tcnn" in str(e.value)


def test_code_prior_is_squared_norm():
    z = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert torch.allclose(code_regulariser(z, 0.5), torch.tensor([12.5, 0.5]))


def test_weighted_instance_loss_ignores_unobserved():
    per = torch.tensor([[1.0, 100.0], [2.0, 4.0]])
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(instance_data_loss(per, w), torch.tensor([1.0, 3.0]))
    assert torch.allclose(instance_data_loss(per, torch.zeros_like(w)), torch.zeros(2))


def test_latent_table_init_and_max_norm():
    table = LatentTable(1000, 16, init_std=0.5, generator=torch.Generator().manual_seed(0))
    assert abs(table.weight.std().item() - 0.5) < 0.02
    capped = LatentTable(10, 16, init_std=10.0, max_norm=1.0)
    assert (capped(torch.arange(10)).norm(dim=1) <= 1.0 + 1e-5).all()


def _problem(k=4, n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    dec = CoordinateMLP(SMALL)
    q = torch.rand(k, n, 3, generator=g) * 2 - 1
    with torch.no_grad():
        truth = torch.randn(k, 8, generator=g) * 0.5
        targets = dec(truth, q).squeeze(-1)
    weights = (torch.rand(k, n, generator=g) > 0.3).float()  # a mask: 30% unobserved
    return dec, Observations(q, targets, weights)


def _loss(pred, obs):
    return clamped_l1(pred, obs, 1.0)


def test_batched_fitting_equals_fitting_each_alone():
    dec, obs = _problem()
    cfg = FitConfig(iterations=60, lr=1e-2)
    init = initial_codes(4, 8, cfg)
    together = fit_latents(dec, obs, _loss, 8, cfg, init=init)
    for k in range(4):
        alone = fit_latents(dec, obs.select(slice(k, k + 1)), _loss, 8, cfg, init=init[k : k + 1])
        torch.testing.assert_close(together.codes[k : k + 1], alone.codes, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(together.losses[k : k + 1], alone.losses, atol=1e-6, rtol=1e-4)


def test_fitting_lowers_the_masked_loss_and_leaves_the_decoder_alone():
    dec, obs = _problem(seed=1)
    before = {k: v.clone() for k, v in dec.state_dict().items()}
    result = fit_latents(dec, obs, _loss, 8, FitConfig(iterations=150, lr=2e-2))
    assert (result.history[-1] < 0.5 * result.history[0]).all()
    assert all(torch.equal(before[k], v) for k, v in dec.state_dict().items())
    assert all(p.requires_grad for p in dec.parameters())  # restored after fitting


def test_checkpoint_round_trip(tmp_path):
    dec = CoordinateMLP(SMALL)
    payload = {"kind": "test", "config": {"a": [1, 2]}, "epoch": 3, "decoder": dec.state_dict(), "latents": torch.randn(2, 8), "instance_ids": ["x", "y"]}
    save_checkpoint(tmp_path / "c.pt", payload)
    back = load_checkpoint(tmp_path / "c.pt", kind="test")
    assert back["epoch"] == 3 and back["instance_ids"] == ["x", "y"] and back["schema_version"] == 1
    assert torch.equal(back["latents"], payload["latents"])
    with pytest.raises(CheckpointError, match="expected 'shapes'"):
        load_checkpoint(tmp_path / "c.pt", kind="shapes")


def test_truncated_or_missing_checkpoint_is_one_clear_line(tmp_path):
    dec = CoordinateMLP(SMALL)
    save_checkpoint(tmp_path / "c.pt", {"kind": "t", "config": {}, "epoch": 0, "decoder": dec.state_dict(), "latents": torch.zeros(1, 8), "instance_ids": ["a"]})
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="nope.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an sdf-autodec checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_early_stopping_is_per_instance_and_batching_does_not_change_it():
    dec, obs = _problem(k=3, seed=2)
    cfg = FitConfig(iterations=150, lr=2e-2, patience=10, min_delta=1e-2)
    init = initial_codes(3, 8, cfg)
    together = fit_latents(dec, obs, _loss, 8, cfg, init=init)
    assert (together.steps < 150).all()  # every instance stopped on its own
    for k in range(3):
        alone = fit_latents(dec, obs.select(slice(k, k + 1)), _loss, 8, cfg, init=init[k : k + 1])
        assert alone.steps[0] == together.steps[k]
        torch.testing.assert_close(together.codes[k : k + 1], alone.codes, atol=1e-5, rtol=1e-4)
    full = fit_latents(dec, obs, _loss, 8, FitConfig(iterations=150, lr=2e-2), init=init)
    assert (full.steps == 150).all()


def test_restarts_keep_the_best_start_per_instance():
    dec, obs = _problem(k=4, seed=3)
    one = fit_latents(dec, obs, _loss, 8, FitConfig(iterations=30, lr=1e-2, init_std=0.5))
    three = fit_latents(dec, obs, _loss, 8, FitConfig(iterations=30, lr=1e-2, init_std=0.5, restarts=3))
    assert (three.losses <= one.losses + 1e-7).all()  # the first restart is the single run
    recomputed = instance_data_loss(_loss(dec(three.codes, obs.queries), obs), obs.weights) + code_regulariser(three.codes, 1e-4)
    torch.testing.assert_close(recomputed, three.losses)
