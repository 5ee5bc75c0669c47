"""Training a DeepSDF autodecoder: decoder weights and one latent code per training shape.

Run directory::

    RUN_DIR/checkpoints/latest.pt        last checkpoint (self-describing; see core.checkpoint)
    RUN_DIR/checkpoints/epoch_<E>.pt     periodic snapshots (the last ``keep_last`` are kept)
    RUN_DIR/metrics.jsonl                one line per epoch: losses, learning rates, seconds
    RUN_DIR/loss.png                     the loss curve, at the end

Each epoch visits every scene once in a seeded random order, in batches of ``scenes_per_batch``
scenes with ``samples_per_scene`` samples each. Dropout and sampling draw from generators seeded by
``(seed, epoch)``, so a resumed run (from an epoch boundary) reproduces an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from sdf_autodec.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sdf_autodec.core.engine import NonFiniteLoss, make_optimizer, training_step
from sdf_autodec.core.latents import LatentTable
from sdf_autodec.core.observations import Observations
from sdf_autodec.core.seeding import seed_global, torch_generator
from sdf_autodec.nn.mlp import DecoderConfig
from sdf_autodec.nn.registry import build_decoder
from sdf_autodec.shapes.dataset import PackedSdfSamples, resolve_split
from sdf_autodec.shapes.loss import clamped_l1

CHECKPOINT_KIND = "shapes"


@dataclass
class TrainConfig:
    """Training of the SDF autodecoder (defaults: the DeepSDF recipe)."""

    data: str = ""
    """Data directory written by ``sdf-autodec prep``."""
    run: str = ""
    """Run directory (checkpoints, metrics)."""
    split: str = ""
    """Split json (path, or name under DATA/splits/); default: DATA/splits/train.json, else all shapes."""
    model: DecoderConfig = field(default_factory=DecoderConfig)
    """Decoder architecture."""
    epochs: int = 2000
    """Epochs to train (a resumed run continues up to this number)."""
    scenes_per_batch: int = 64
    """Scenes per optimisation step."""
    samples_per_scene: int = 16384
    """SDF samples per scene per step, half from ``pos`` and half from ``neg``."""
    lr_decoder: float = 5e-4
    """Adam learning rate of the decoder."""
    lr_codes: float = 1e-3
    """Adam learning rate of the codes."""
    lr_halve_every: int = 500
    """Both learning rates are halved every this many epochs."""
    clamp: float = 0.1
    """DeepSDF's δ: predictions and targets are clamped to [-δ, δ] in the loss."""
    code_reg_weight: float = 1e-4
    """Weight λ of the code prior ``λ ||z||²`` (core.prior), the same at fitting time."""
    code_reg_rampup_epochs: int = 100
    """λ ramps linearly from 0 to its value over this many epochs (DeepSDF)."""
    code_init_std: float = 0.0
    """Std of the initial codes; 0 means 1/sqrt(latent_size) (DeepSDF)."""
    code_max_norm: float = 1.0
    """Codes are capped at this norm (0 disables the cap)."""
    weight_decay: float = 0.0
    """L2 weight decay on the decoder."""
    checkpoint_every: int = 50
    """Epochs between checkpoints (one is always written at the end)."""
    keep_last: int = 2
    """Periodic ``epoch_<E>.pt`` snapshots to keep (``latest.pt`` is always kept)."""
    resume: bool = True
    """Continue from RUN_DIR/checkpoints/latest.pt when it exists."""
    device: str = "auto"
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    seed: int = 0
    """Seed of codes, weights, dropout and sampling."""
    progress: bool = True
    """Show a progress bar."""


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} asked for, but CUDA is not available; use device=cpu")
    return device


@dataclass
class TrainedModel:
    """A decoder and its training codes, as loaded from a run directory."""

    decoder: torch.nn.Module
    latents: torch.Tensor  # (N, D)
    ids: list[str]
    config: dict
    checkpoint: Path

    @property
    def latent_size(self) -> int:
        return self.latents.shape[1]


def checkpoint_dir(run: str | Path) -> Path:
    return Path(run) / "checkpoints"


def decoder_config_from_dict(d: dict) -> DecoderConfig:
    return DecoderConfig(**{k: v for k, v in d.items() if k in DecoderConfig.__dataclass_fields__})


def load_trained(run: str | Path, device: str = "auto") -> TrainedModel:
    """Load ``RUN_DIR/checkpoints/latest.pt`` (or a checkpoint file) into a decoder in eval mode."""
    path = Path(run)
    path = path if path.is_file() else checkpoint_dir(path) / "latest.pt"
    ckpt = load_checkpoint(path, kind=CHECKPOINT_KIND)
    decoder = build_decoder(decoder_config_from_dict(ckpt["config"]["model"]))
    try:
        decoder.load_state_dict(ckpt["decoder"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: decoder weights do not fit its own config ({str(e).splitlines()[0]})") from None
    dev = resolve_device(device)
    return TrainedModel(decoder.to(dev).eval(), ckpt["latents"].to(dev), list(ckpt["instance_ids"]), ckpt["config"], path)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    return 0.5 ** (epoch // cfg.lr_halve_every) if cfg.lr_halve_every > 0 else 1.0


def code_reg_at(epoch: int, cfg: TrainConfig) -> float:
    ramp = min(1.0, (epoch + 1) / cfg.code_reg_rampup_epochs) if cfg.code_reg_rampup_epochs > 0 else 1.0
    return cfg.code_reg_weight * ramp


def _config_dict(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))  # plain types only (weights_only loading)


def _save(run: Path, cfg: TrainConfig, epoch: int, decoder, latents, optimizer, ids: list[str]) -> None:
    payload = {
        "kind": CHECKPOINT_KIND,
        "config": _config_dict(cfg),
        "epoch": epoch,
        "decoder": decoder.state_dict(),
        "latents": latents.weight.detach().cpu(),
        "optimizer": optimizer.state_dict(),
        "instance_ids": ids,
    }
    ckdir = checkpoint_dir(run)
    save_checkpoint(ckdir / "latest.pt", payload)
    if cfg.keep_last > 0:
        save_checkpoint(ckdir / f"epoch_{epoch:06d}.pt", payload)
        for old in sorted(ckdir.glob("epoch_*.pt"))[: -cfg.keep_last]:
            old.unlink()


def _check_resumable(ckpt: dict, cfg: TrainConfig, ids: list[str], path: Path) -> None:
    if ckpt["config"].get("model") != _config_dict(cfg)["model"]:
        raise CheckpointError(
            f"{path}: checkpoint was trained with model {ckpt['config'].get('model')}, this run asks for {asdict(cfg.model)}; "
            "use another run= directory or resume=false"
        )
    if list(ckpt["instance_ids"]) != ids:
        raise CheckpointError(f"{path}: checkpoint's training shapes differ from this run's split; use another run= directory")


def train(cfg: TrainConfig) -> TrainedModel:
    """Train (or resume) a run; returns the trained model. See the module docstring for the files."""
    if not cfg.data or not cfg.run:
        raise ValueError("train needs data=DATA_DIR and run=RUN_DIR")
    if cfg.epochs < 0 or cfg.scenes_per_batch < 1 or cfg.samples_per_scene < 2:
        raise ValueError(f"impossible training config: epochs={cfg.epochs}, scenes_per_batch={cfg.scenes_per_batch}, samples_per_scene={cfg.samples_per_scene}")
    device = resolve_device(cfg.device)
    run = Path(cfg.run)
    store = PackedSdfSamples(cfg.data, resolve_split(cfg.data, cfg.split))
    ids = store.ids

    seed_global(cfg.seed, "init")
    decoder = build_decoder(cfg.model).to(device)
    init_std = cfg.code_init_std or 1.0 / math.sqrt(cfg.model.latent_size)
    latents = LatentTable(len(store), cfg.model.latent_size, init_std, cfg.code_max_norm or None, torch_generator(cfg.seed, "codes")).to(device)
    optimizer = make_optimizer(decoder, latents, cfg.lr_decoder, cfg.lr_codes, cfg.weight_decay)

    start = 0
    latest = checkpoint_dir(run) / "latest.pt"
    if cfg.resume and latest.is_file():
        ckpt = load_checkpoint(latest, kind=CHECKPOINT_KIND)
        _check_resumable(ckpt, cfg, ids, latest)
        decoder.load_state_dict(ckpt["decoder"])
        with torch.no_grad():
            latents.weight.copy_(ckpt["latents"].to(device))
        optimizer.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["epoch"])
    run.mkdir(parents=True, exist_ok=True)
    (run / "train_config.json").write_text(json.dumps(_config_dict(cfg), indent=2))
    metrics_path = run / "metrics.jsonl"
    history = _read_metrics(metrics_path, before_epoch=start)
    _write_metrics(metrics_path, history)

    element_loss = lambda pred, obs: clamped_l1(pred, obs, cfg.clamp)  # noqa: E731
    decoder.train()
    bar = tqdm(range(start, cfg.epochs), desc="train", unit="epoch", disable=not cfg.progress, initial=start, total=cfg.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        seed_global(cfg.seed, "dropout", epoch)
        generator = torch_generator(cfg.seed, "sampling", epoch)
        factor = lr_factor(epoch, cfg)
        optimizer.param_groups[0]["lr"] = cfg.lr_decoder * factor
        optimizer.param_groups[1]["lr"] = cfg.lr_codes * factor
        reg = code_reg_at(epoch, cfg)
        sums = {"loss": 0.0, "data": 0.0, "prior": 0.0}
        batches = torch.randperm(len(store), generator=generator).split(cfg.scenes_per_batch)
        for scenes in batches:
            xyz, sdf = store.sample(scenes, cfg.samples_per_scene, generator)
            obs = Observations(queries=xyz.to(device), targets=sdf.to(device))
            try:
                stats = training_step(decoder, latents, scenes.to(device), obs, element_loss, optimizer, reg)
            except NonFiniteLoss as e:
                raise NonFiniteLoss(
                    f"{e} at epoch {epoch}: training stopped; the last good state is {latest}. "
                    "Try a lower lr_decoder/lr_codes or check the data for NaNs."
                ) from None
            for k in sums:
                sums[k] += getattr(stats, k) / len(batches)
        row = {"epoch": epoch + 1, **sums, "lr_decoder": cfg.lr_decoder * factor, "lr_codes": cfg.lr_codes * factor, "seconds": time.perf_counter() - t0}
        history.append(row)
        with metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        bar.set_postfix(loss=f"{sums['loss']:.4f}")
        if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
            _save(run, cfg, epoch + 1, decoder, latents, optimizer, ids)
    if start >= cfg.epochs and not latest.is_file():
        _save(run, cfg, cfg.epochs, decoder, latents, optimizer, ids)
    _plot_losses(history, run / "loss.png")
    return load_trained(run, cfg.device)


def _read_metrics(path: Path, before_epoch: int) -> list[dict]:
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["epoch"] <= before_epoch]


def _write_metrics(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _plot_losses(history: list[dict], path: Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sdf_autodec.atomic import atomic_write

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [r["epoch"] for r in history]
    ax.semilogy(epochs, [r["data"] for r in history], label="data (clamped L1)")
    ax.semilogy(epochs, [max(r["prior"], 1e-12) for r in history], label="code prior")
    ax.set_xlabel("epoch")
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)
