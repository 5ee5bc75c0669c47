"""Training at speed and scale: exact resume after kill -9, DDP on 2 CPU processes, the sampler,
DeepSDF's schedule, NaN stops, logging options, amp/compile options and the tcnn backend's wiring."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, TINY_MODEL, tiny_train_config
from sdf_autodec.core.checkpoint import load_checkpoint, save_checkpoint
from sdf_autodec.core.engine import NonFiniteLoss
from sdf_autodec.storage.layout import DatasetLayout, read_sdf_samples, read_split
from sdf_autodec.nn.mlp import DecoderConfig, decoder_config_from_dict
from sdf_autodec.nn.registry import BackendUnavailable, build_decoder
from sdf_autodec.optional import MissingDependency, tensorboard_writer
from sdf_autodec.shapes.dataset import PackedSdfSamples
from sdf_autodec.core.training import lr_factor
from sdf_autodec.shapes.train import TrainConfig, code_reg_at, load_trained, train, train_config_from_dict

SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _cli_overrides(data: Path, run: Path, **extra) -> list[str]:
    """A tiny run, every training field written out (the CLI's default preset is DeepSDF's)."""
    fields = {
        "data": data, "run": run, "split": "all", "model": "small",
        "model.latent_size": 8, "model.depth": 3, "model.width": 48, "model.skip_layers": "[2]", "model.dropout": 0.1,
        "epochs": 40, "scenes_per_batch": 2, "samples_per_scene": 2048, "lr_decoder": 2e-3, "lr_codes": 4e-3,
        "lr_halve_every": 15, "code_reg_rampup_epochs": 10, "code_init_std": 0.0, "checkpoint_every": 3, "keep_last": 2,
        "progress": "false", **extra,
    }
    return [f"{k}={v}" for k, v in fields.items()]


def _assert_same_state(a: Path, b: Path, atol: float = 0.0) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["epoch"] == cb["epoch"]
    for name, wa in ca["decoder"].items():
        wb = cb["decoder"][name]
        assert torch.equal(wa, wb) if atol == 0 else torch.allclose(wa, wb, atol=atol, rtol=0), (name, (wa - wb).abs().max().item())
    assert torch.equal(ca["latents"], cb["latents"]) if atol == 0 else torch.allclose(ca["latents"], cb["latents"], atol=atol, rtol=0)
    if atol == 0:  # Adam's moments too: the next step would be the same
        for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
            assert all(torch.equal(sa[k], sb[k]) for k in ("exp_avg", "exp_avg_sq"))


def test_kill_9_mid_run_then_resume_equals_an_uninterrupted_run(data_dir, tmp_path):
    run_b = tmp_path / "killed"
    cmd = [sys.executable, "-m", "sdf_autodec.cli.main", "train", *_cli_overrides(data_dir, run_b)]
    proc = subprocess.Popen(cmd, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    metrics = run_b / "metrics.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.is_file() and len(metrics.read_text().splitlines()) >= 11:
                break  # mid-epoch 12: past the checkpoint of epoch 9, before the one of epoch 12
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    killed_at = load_checkpoint(run_b / "checkpoints" / "latest.pt")["epoch"]
    (run_b / "checkpoints" / ".latest.abc123.tmp.pt").write_bytes(b"half a checkpoint")  # as if killed while saving
    assert 0 < killed_at < 40, "the kill must land mid-run"

    # re-run the killed run's command (as the library, in this process: 1 thread, as the subprocess) ...
    cfg = train_config_from_dict(json.loads((run_b / "train_config.json").read_text()))
    assert cfg.model.width == 48 and cfg.model.dropout == 0.1 and cfg.split == "all" and cfg.run == str(run_b)
    train(cfg)
    # ... and the same config uninterrupted
    cfg.run = str(tmp_path / "straight")
    train(cfg)
    _assert_same_state(tmp_path / "straight" / "checkpoints" / "latest.pt", run_b / "checkpoints" / "latest.pt")
    rows = [json.loads(line) for line in (run_b / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 41))  # rows after the checkpoint were dropped and redone
    assert sorted(p.name for p in (run_b / "checkpoints").iterdir()) == ["epoch_000039.pt", "epoch_000040.pt", "latest.pt"]


def test_two_process_ddp_equals_one_process_with_the_same_global_batch(data_dir, tmp_path):
    # 4 shapes in batches of 3: the second batch has one scene, so rank 1 gets none (an empty shard).
    extra = {"epochs": 3, "scenes_per_batch": 3, "samples_per_scene": 512, "model.dropout": 0.0, "checkpoint_every": 10}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "sdf_autodec.cli.main", "train", *_cli_overrides(data_dir, tmp_path / "ddp", **extra)]
    out = subprocess.run(cmd, env=SUBPROCESS_ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    cfg = train_config_from_dict(json.loads((tmp_path / "ddp" / "train_config.json").read_text()))
    cfg.run = str(tmp_path / "single")
    train(cfg)
    _assert_same_state(tmp_path / "single" / "checkpoints" / "latest.pt", tmp_path / "ddp" / "checkpoints" / "latest.pt", atol=1e-5)
    single = [json.loads(x) for x in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    ddp = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert len(ddp) == 3 and all(math.isclose(a["loss"], b["loss"], rel_tol=1e-5) for a, b in zip(single, ddp))
    assert not list((tmp_path / "ddp").glob("**/*.tmp*"))  # one writer: rank 0


def test_sampler_draws_half_pos_half_neg_from_each_scene_and_shards_exactly(data_dir):
    keys = read_split(DatasetLayout(data_dir).split("all"))
    store = PackedSdfSamples(data_dir, keys)
    scenes = torch.tensor([2, 0, 3, 1, 2])
    rows = store.sample_rows(scenes, 101, torch.Generator().manual_seed(3))
    assert rows.shape == (5, 101, 4) and rows.is_contiguous()
    for b, s in enumerate(scenes.tolist()):
        pos, neg = read_sdf_samples(DatasetLayout(data_dir).sdf(keys[s]))
        # the same draws as DeepSDF's unpack_sdf_samples, one scene at a time (naive reference)
        assert (rows[b, :50, 3] > 0).all() and (rows[b, 50:, 3] <= 0).all()
        assert {tuple(r) for r in rows[b, :50].numpy()} <= {tuple(r) for r in pos}
        assert {tuple(r) for r in rows[b, 50:].numpy()} <= {tuple(r) for r in neg}
    g = torch.Generator().manual_seed(3)
    u_pos, u_neg = torch.rand(5, 50, generator=g), torch.rand(5, 51, generator=g)
    pos, _ = read_sdf_samples(DatasetLayout(data_dir).sdf(keys[2]))
    np.testing.assert_array_equal(rows[0, :50].numpy(), pos[(u_pos[0] * len(pos)).long().numpy()])
    shard = store.sample_rows(scenes, 101, torch.Generator().manual_seed(3), select=torch.tensor([1, 3]))
    assert torch.equal(shard, rows[[1, 3]])  # a process's shard is exactly its part of the global batch
    xyz, sdf = store.sample(scenes, 101, torch.Generator().manual_seed(3))
    assert torch.equal(xyz, rows[..., :3]) and torch.equal(sdf, rows[..., 3])


def test_prefetching_in_a_thread_draws_the_same_samples(data_dir, tmp_path):
    kw = dict(split="all", epochs=3, scenes_per_batch=3, checkpoint_every=3)  # 2 batches per epoch
    train(tiny_train_config(data_dir, tmp_path / "off", prefetch="off", **kw))
    train(tiny_train_config(data_dir, tmp_path / "on", prefetch="on", **kw))
    _assert_same_state(tmp_path / "off" / "checkpoints" / "latest.pt", tmp_path / "on" / "checkpoints" / "latest.pt")


def test_deepsdf_schedule_and_preset_follow_the_official_code():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import sdf_autodec.cli.commands  # noqa: F401  (registers the schemas)

    with initialize_config_module(config_module="sdf_autodec.conf", version_base=None):
        cfg = OmegaConf.to_object(compose(config_name="train", overrides=["recipe=deepsdf"]))
    assert (cfg.scenes_per_batch, cfg.samples_per_scene, cfg.epochs) == (64, 16384, 2000)
    assert (cfg.lr_decoder, cfg.lr_codes, cfg.lr_halve_every, cfg.clamp) == (5e-4, 1e-3, 500, 0.1)
    assert (cfg.code_reg_weight, cfg.code_reg_rampup_epochs, cfg.code_max_norm) == (1e-4, 100, 1.0)
    assert cfg.code_init_std == 1 / math.sqrt(cfg.model.latent_size) == 0.0625
    m = cfg.model
    assert (m.depth, m.width, m.latent_size, m.skip_layers, m.dropout, m.weight_norm, m.output_tanh) == (8, 512, 256, [4], 0.2, True, True)
    defaults = TrainConfig()  # the schema's defaults are the same recipe
    assert all(getattr(defaults, k) == getattr(cfg, k) for k in ("scenes_per_batch", "samples_per_scene", "lr_decoder", "lr_codes", "lr_halve_every", "clamp", "code_reg_weight", "code_reg_rampup_epochs", "code_max_norm"))
    # DeepSDF counts epochs from 1: rate 0.5 ** (e // 500), prior λ·min(1, e / 100); ours are 0-based
    official_lr = lambda e: 5e-4 * 0.5 ** (e // 500)  # noqa: E731
    official_reg = lambda e: 1e-4 * min(1, e / 100)  # noqa: E731
    for epoch in (0, 1, 98, 99, 100, 498, 499, 500, 998, 999, 1999):
        assert cfg.lr_decoder * lr_factor(epoch, cfg.lr_halve_every) == official_lr(epoch + 1)
        assert math.isclose(code_reg_at(epoch, cfg), official_reg(epoch + 1))


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_state(data_dir, tmp_path, monkeypatch):
    import sdf_autodec.shapes.train as train_module

    calls = {"n": 0}
    real = train_module.clamped_l1

    def poisoned(pred, obs, clamp):  # the 5th step's loss is NaN
        calls["n"] += 1
        loss = real(pred, obs, clamp)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(train_module, "clamped_l1", poisoned)
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLoss) as e:  # 2 training shapes, batches of 2: one step per epoch
        train(tiny_train_config(data_dir, run, epochs=8, checkpoint_every=2, keep_last=5))
    message = str(e.value)
    assert "\n" not in message and "step 5 (epoch 5" in message and "last_good.pt" in message and "lower lr" in message
    _assert_same_state(run / "checkpoints" / "last_good.pt", run / "checkpoints" / "epoch_000004.pt")  # nothing of step 5 applied
    assert load_trained(run / "checkpoints" / "last_good.pt").latents.shape == (2, 8)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4 and (run / "loss.png").is_file()


def test_tensorboard_is_optional(data_dir, tmp_path):
    if tensorboard_writer() is None:
        train(tiny_train_config(data_dir, tmp_path / "a", epochs=1))  # auto: trains without it
        assert not (tmp_path / "a" / "tensorboard").exists() and (tmp_path / "a" / "metrics.jsonl").is_file()
        with pytest.raises(MissingDependency) as e:
            train(tiny_train_config(data_dir, tmp_path / "b", epochs=1, tensorboard="on"))
        assert "\n" not in str(e.value) and "pip install tensorboard" in str(e.value)
    else:
        train(tiny_train_config(data_dir, tmp_path / "a", epochs=2))
        assert list((tmp_path / "a" / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_options_train_on_cpu(data_dir, tmp_path, amp):
    model = train(tiny_train_config(data_dir, tmp_path / amp, epochs=3, amp=amp))
    rows = [json.loads(x) for x in (tmp_path / amp / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) for r in rows)
    assert model.latents.dtype == torch.float32 and all(p.dtype == torch.float32 for p in model.decoder.parameters())
    extra = load_checkpoint(tmp_path / amp / "checkpoints" / "latest.pt")["extra"]
    assert (extra["scaler"] is not None) == (amp == "fp16")  # the fp16 loss scale is checkpointed (exact resume)
    with pytest.raises(ValueError, match="amp="):
        train(tiny_train_config(data_dir, tmp_path / "x", amp="fp8"))


def test_compile_option_traces_and_trains_the_same(data_dir, tmp_path):
    # aot_eager traces the forward and backward graphs (dynamo + AOT autograd) without generating
    # C++ code, which takes minutes on this CPU; the default backend is inductor.
    eager = train(tiny_train_config(data_dir, tmp_path / "eager", epochs=2))
    compiled = train(tiny_train_config(data_dir, tmp_path / "compiled", epochs=2, compile=True, compile_backend="aot_eager"))
    assert torch.allclose(eager.latents, compiled.latents, atol=1e-5)
    for (name, a), (_, b) in zip(eager.decoder.state_dict().items(), compiled.decoder.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_resume_from_a_checkpoint_written_before_the_new_options(data_dir, tmp_path):
    """Runs started by the previous version (no encoding/tcnn fields, no ``extra``) resume and load."""
    run = tmp_path / "old"
    train(tiny_train_config(data_dir, run, epochs=2))
    path = run / "checkpoints" / "latest.pt"
    ckpt = load_checkpoint(path)
    for k in ("encoding", "hashgrid", "tcnn_network"):
        del ckpt["config"]["model"][k]
    for k in ("amp", "compile", "compile_backend", "tensorboard"):
        del ckpt["config"][k]
    del ckpt["extra"], ckpt["schema_version"]
    save_checkpoint(path, ckpt)
    model = train(tiny_train_config(data_dir, run, epochs=3))
    assert load_checkpoint(model.checkpoint)["epoch"] == 3
    assert decoder_config_from_dict(ckpt["config"]["model"]) == TINY_MODEL


# ---- tcnn backend ---------------------------------------------------------------------------------


def test_tcnn_asked_for_without_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailable) as e:
        build_decoder(DecoderConfig(backend="tcnn"))
    assert "\n" not in str(e.value) and "CUDA" in str(e.value)


def test_tcnn_absent_is_one_line_with_the_install_route(monkeypatch):
    import sdf_autodec.optional as optional

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "tinycudann", None)  # import fails as if not installed
    optional.tinycudann.cache_clear()
    with pytest.raises(MissingDependency) as e:
        build_decoder(DecoderConfig(backend="tcnn", weight_norm=False, dropout=0.0))
    assert "\n" not in str(e.value)
    assert "pip install git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch" in str(e.value)


def _fake_tcnn(log: list) -> types.ModuleType:
    """Stand-ins for tinycudann's Network and Encoding with its interface: fp16 outputs, a config dict
    per network (recorded in ``log``), ReLU hidden layers and the configured output activation."""

    class Network(torch.nn.Module):
        def __init__(self, n_input_dims, n_output_dims, network_config, seed=1337):
            super().__init__()
            log.append((n_input_dims, n_output_dims, dict(network_config)))
            torch.manual_seed(seed)
            dims = [n_input_dims] + [network_config["n_neurons"]] * network_config["n_hidden_layers"] + [n_output_dims]
            self.layers = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
            self.out_relu = network_config["output_activation"] == "ReLU"

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = layer(x.float())
                if i < len(self.layers) - 1 or self.out_relu:
                    x = torch.relu(x)
            return x.half()

    class Encoding(torch.nn.Module):
        def __init__(self, n_input_dims, encoding_config, seed=1337, dtype=None):
            super().__init__()
            log.append(("encoding", dict(encoding_config)))
            self.n_output_dims = encoding_config["n_levels"] * encoding_config["n_features_per_level"]
            self.proj = torch.nn.Linear(n_input_dims, self.n_output_dims)

        def forward(self, x):
            assert x.min() >= 0 and x.max() <= 1  # tcnn's grid takes the unit cube
            return torch.sin(self.proj(x)).half()

    return types.SimpleNamespace(Network=Network, Encoding=Encoding)


def test_tcnn_decoder_wiring_with_a_stand_in_module():
    from sdf_autodec.nn.tcnn import TcnnDecoder

    log: list = []
    cfg = DecoderConfig(backend="tcnn", latent_size=16, depth=6, width=64, skip_layers=[3], weight_norm=False, dropout=0.0)
    dec = TcnnDecoder(cfg, _fake_tcnn(log), seed=7)
    (a_in, a_out, a), (b_in, b_out, b) = log
    assert a["otype"] == b["otype"] == "FullyFusedMLP"  # width 64 fits the fused MLP
    assert (a_in, a_out, a["n_hidden_layers"], a["output_activation"]) == (19, 64 - 19, 2, "ReLU")  # layers 0-2, split at 3
    assert (b_in, b_out, b["n_hidden_layers"], b["output_activation"]) == (64, 1, 3, "None")  # layers 3-5 + head
    z = torch.randn(3, 16, requires_grad=True)
    out = dec(z, torch.rand(3, 10, 3) * 2 - 1)
    assert out.shape == (3, 10, 1) and out.dtype == torch.float32 and (out.abs() < 1).all()
    out.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0  # the codes are trained through both segments
    # the same network as the torch decoder: features, then [z, q] again at the skip layer
    x0 = torch.cat([z[:, None].expand(3, 10, 16), torch.zeros(3, 10, 3)], -1).reshape(30, 19)
    h = dec.segments[0](x0).float()
    ref = torch.tanh(dec.segments[1](torch.cat([h, x0], -1)).float()).reshape(3, 10, 1)
    assert torch.allclose(dec(z, torch.zeros(3, 10, 3)), ref)

    log.clear()
    wide = DecoderConfig(backend="tcnn", latent_size=256, depth=8, width=512, skip_layers=[1, 4], weight_norm=False, dropout=0.0)
    dec = TcnnDecoder(wide, _fake_tcnn(log))
    assert [entry[2]["otype"] for entry in log] == ["CutlassMLP", "CutlassMLP"]  # 512 is too wide for the fused MLP
    assert isinstance(dec.segments[0][0], torch.nn.Linear)  # layer 0 alone before the skip at 1: one matmul
    assert dec(torch.zeros(2, 256), torch.zeros(2, 5, 3)).shape == (2, 5, 1)

    log.clear()
    grid = DecoderConfig(backend="tcnn", latent_size=64, depth=4, width=128, skip_layers=[2], weight_norm=False, dropout=0.0, encoding="hashgrid")
    dec = TcnnDecoder(grid, _fake_tcnn(log))
    assert log[0][0] == "encoding" and log[0][1]["n_levels"] == 16 and log[1][0] == 64 + 32
    assert dec(torch.zeros(2, 64), torch.rand(2, 7, 3) * 2 - 1).dtype == torch.float32

    with pytest.raises(ValueError, match="weight norm"):
        TcnnDecoder(DecoderConfig(backend="tcnn"), _fake_tcnn([]))  # DeepSDF's weight norm + dropout


def test_tcnn_presets_compose_and_build_with_a_stand_in_module():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import sdf_autodec.cli.commands  # noqa: F401
    from sdf_autodec.nn.tcnn import TcnnDecoder

    for preset, otype in (("tcnn", "CutlassMLP"), ("tcnn_hashgrid", "FullyFusedMLP")):
        with initialize_config_module(config_module="sdf_autodec.conf", version_base=None):
            cfg = OmegaConf.to_object(compose(config_name="train", overrides=[f"recipe={preset}"]))
        log: list = []
        TcnnDecoder(cfg.model, _fake_tcnn(log))
        assert {e[2]["otype"] for e in log if e[0] != "encoding"} == {otype}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (and tinycudann)")
def test_tcnn_decoder_on_a_gpu_matches_its_torch_reading():
    pytest.importorskip("tinycudann")
    cfg = DecoderConfig(backend="tcnn", latent_size=16, depth=4, width=64, skip_layers=[2], weight_norm=False, dropout=0.0)
    dec = build_decoder(cfg).cuda()
    z, q = torch.randn(4, 16, device="cuda", requires_grad=True), torch.rand(4, 100, 3, device="cuda") * 2 - 1
    out = dec(z, q)
    assert out.shape == (4, 100, 1) and out.dtype == torch.float32 and torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(z.grad).all()
