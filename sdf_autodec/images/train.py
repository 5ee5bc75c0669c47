"""Training the two image models on the same images.

- The **autoencoder** (AE): encoder + decoder, a plain per-pixel squared-error loss. Two variants
  for the masked experiments: ``loss_mask`` (a fixed mask: the loss ignores its hidden pixels, the
  input is the whole image) and ``input_masks`` (a mask drawn per image and batch: the input is the
  masked image, the loss is on every pixel).
- The **autodecoder** (AD): a :class:`~sdf_autodec.nn.conv.CoordConvDecoder` and one code per
  training image in the core's :class:`~sdf_autodec.core.latents.LatentTable`, trained jointly by
  the core's :func:`~sdf_autodec.core.engine.training_step`. Its objective has three terms:
  reconstruction (per-pixel squared error), the core's code prior ``λ ||z||²``
  (:func:`~sdf_autodec.core.prior.code_regulariser`, the same one used when fitting test images)
  and an L2 penalty on the decoder's weights (the optimiser's weight decay). Its validation loss is
  the reconstruction error of held-out images *after fitting their codes* with the decoder frozen
  (:func:`~sdf_autodec.core.fitting.fit_latents`): a fresh random code would mean nothing.

Both return a history with one row per epoch: ``train`` (mean reconstruction MSE over the epoch)
and ``val`` (AE: every epoch; AD: every ``val_every`` epochs, NaN otherwise); the AD's rows also have
``val_unfitted``, the validation error with random codes that were never fitted (what a validation
loss means for an autodecoder without the fit: nothing). The AD's snapshots start at epoch 0. Batches are drawn
from generators seeded by ``(seed, name, epoch)``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from sdf_autodec.core.engine import NonFiniteLoss, make_optimizer, training_step
from sdf_autodec.core.fitting import FitConfig, fit_latents
from sdf_autodec.core.latents import LatentTable
from sdf_autodec.core.observations import instance_data_loss
from sdf_autodec.core.seeding import seed_global, torch_generator
from sdf_autodec.core.training import epoch_batches, lr_factor, run_epoch, set_learning_rates
from sdf_autodec.images.loss import squared_error
from sdf_autodec.images.observations import pixel_observations

MaskSampler = Callable[[int, torch.Generator], torch.Tensor]
"""``sampler(num, generator) -> (num, 1, S, S)`` masks (1 visible, 0 hidden)."""


@dataclass
class AETrainConfig:
    """Training of the convolutional autoencoder."""

    epochs: int = 8
    """Passes over the training images."""
    batch_size: int = 128
    """Images per step."""
    lr: float = 2e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """L2 weight decay (Adam's)."""


@dataclass
class ADTrainConfig:
    """Training of the autodecoder (decoder + one code per training image)."""

    epochs: int = 30
    """Passes over the training images (each code gets one gradient per epoch)."""
    batch_size: int = 64
    """Images (and codes) per step."""
    lr_decoder: float = 2e-3
    """Adam learning rate of the decoder."""
    lr_codes: float = 1e-2
    """Adam learning rate of the codes."""
    code_reg_weight: float = 1e-3
    """λ of the code prior ``λ ||z||²`` (core.prior), the same at inference (``fit.code_reg_weight``).
    Measured once each (30 epochs, 500 test images; the 1e-4 run halved its learning rates every 15
    epochs, not 12): 1e-3 beats 1e-4 on held-out reconstruction (MSE 0.0035 vs
    0.0039) and on completion of a hidden 16 x 16 centre (0.120 vs 0.128) and top half (0.037 vs 0.041)."""
    weight_decay: float = 1e-5
    """L2 penalty on the decoder's weights (Adam's weight decay)."""
    code_init_std: float = 0.1
    """Std of the initial training codes."""
    lr_halve_every: int = 12
    """Both learning rates are halved from the 12th epoch on, again from the 24th, ... (0: never):
    the core's one schedule, :func:`~sdf_autodec.core.training.lr_factor` (DeepSDF's). Until issue 15
    this module halved one epoch later (from the 13th), so studies run before then differ there."""
    val_every: int = 5
    """Epochs between validation fits (and always after the last epoch)."""
    val_images: int = 500
    """Validation images whose codes are fitted (the first ones of the validation subset)."""
    val_fit: FitConfig = field(default_factory=lambda: FitConfig(iterations=50, lr=5e-2, lr_drop_at=0.6, init_std=0.0))
    """Fitting of the validation codes (cheaper than the experiments' ``fit``); its code prior is ``code_reg_weight``."""


@dataclass
class TrainResult:
    """What a training run returns: the per-epoch history and its wall time."""

    history: list[dict]
    seconds: float
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    """AD only: epoch → ``(n, C, S, S)`` reconstructions of the tracked training images."""


def train_autoencoder(
    model: nn.Module,
    train: torch.Tensor,
    val: torch.Tensor,
    cfg: AETrainConfig,
    seed: int,
    name: str = "ae",
    loss_mask: torch.Tensor | None = None,
    input_masks: MaskSampler | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` (a :class:`~sdf_autodec.nn.conv.ConvAutoencoder`) in place.

    ``train: (N, C, S, S)``, ``val: (M, C, S, S)``; ``loss_mask: (1, 1, S, S)`` weights of the loss
    (0 = ignored); ``input_masks`` draws the masks applied to the input (the loss still sees all
    pixels). ``name`` keys the seeds, so the variants draw different batches.
    """
    if cfg.epochs < 0 or cfg.batch_size < 1:
        raise ValueError(f"impossible AE training config: epochs={cfg.epochs}, batch_size={cfg.batch_size}")
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    val_in = val if input_masks is None else val * input_masks(len(val), torch_generator(seed, name, "val-masks")).to(val.device)

    def loss_of(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:  # (B,) per-image weighted MSE
        per_pixel = (model(inputs) - targets).pow(2)
        weights = None if loss_mask is None else loss_mask.expand_as(targets)
        return instance_data_loss(per_pixel, weights)

    history, t_start = [], time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=f"train {name}", unit="epoch", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        generator = torch_generator(seed, name, "batches", epoch)
        model.train()

        def step(i: int, index: torch.Tensor, _) -> dict:
            x = train[index].to(device)
            x_in = x if input_masks is None else x * input_masks(len(x), generator).to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of(x_in, x).mean()
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"{name}: loss is {loss.item()} at epoch {epoch}; try a lower lr")
            loss.backward()
            optimizer.step()
            return {"train": loss.item()}

        stats = run_epoch(epoch_batches(len(train), cfg.batch_size, generator), step)
        model.eval()
        with torch.no_grad():
            val_loss = torch.cat([loss_of(val_in[i : i + 500].to(device), val[i : i + 500].to(device)) for i in range(0, len(val), 500)]).mean().item()
        history.append({"epoch": epoch + 1, "train": stats.means["train"], "val": val_loss, "seconds": time.perf_counter() - t0})
        bar.set_postfix(train=f"{history[-1]['train']:.4f}", val=f"{val_loss:.4f}")
    return TrainResult(history, time.perf_counter() - t_start)


def fit_codes(
    decoder: nn.Module, images: torch.Tensor, masks: torch.Tensor | None, latent_size: int, cfg: FitConfig, batch_size: int = 1000
):
    """Codes for ``images: (N, C, S, S)`` fitted to the pixels where ``masks`` (broadcastable) is 1,
    with the decoder frozen: the core's batched :func:`~sdf_autodec.core.fitting.fit_latents`,
    ``batch_size`` images per call. Returns ``(codes: (N, D), data_losses: (N,))``."""
    device = next(decoder.parameters()).device
    codes, losses = [], []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device)
        w = None if masks is None else masks[i : i + batch_size].to(device) if masks.shape[0] == len(images) else masks.to(device)
        result = fit_latents(decoder, pixel_observations(x, w), squared_error, latent_size, cfg)
        codes.append(result.codes.cpu())
        losses.append(result.data_losses.cpu())
    return torch.cat(codes), torch.cat(losses)


def snapshot_epochs(epochs: int) -> list[int]:
    """Epochs after which the AD's progress is recorded: 1, 2, 4, 8, ... and the last."""
    marks = [2**i for i in range(int(math.log2(max(epochs, 1))) + 1) if 2**i <= epochs]
    return sorted(set(marks + ([epochs] if epochs > 0 else [])))


def train_autodecoder(
    decoder: nn.Module,
    latent_size: int,
    train: torch.Tensor,
    val: torch.Tensor,
    cfg: ADTrainConfig,
    seed: int,
    track: torch.Tensor | None = None,
    progress: bool = True,
) -> tuple[LatentTable, TrainResult]:
    """Train ``decoder`` (``f(z, q) -> (K, C, S, S)``) and one code per image of ``train: (N, C, S, S)``.

    ``val: (M, C, S, S)`` images whose codes (the first ``cfg.val_images``) are fitted every ``cfg.val_every`` epochs. ``track``:
    indices of training images whose reconstructions are recorded at :func:`snapshot_epochs`.
    Returns the latent table (row i = code of ``train[i]``) and the history.
    """
    if cfg.epochs < 0 or cfg.batch_size < 1 or cfg.val_every < 1 or cfg.val_images < 1:
        raise ValueError(f"impossible AD training config: epochs={cfg.epochs}, batch_size={cfg.batch_size}, val_every={cfg.val_every}, val_images={cfg.val_images}")
    val = val[: cfg.val_images]
    device = next(decoder.parameters()).device
    latents = LatentTable(len(train), latent_size, cfg.code_init_std, generator=torch_generator(seed, "ad", "codes")).to(device)
    optimizer = make_optimizer(decoder, latents, cfg.lr_decoder, cfg.lr_codes, cfg.weight_decay)
    val_fit = FitConfig(**{**vars(cfg.val_fit), "code_reg_weight": cfg.code_reg_weight, "seed": seed})
    marks = set(snapshot_epochs(cfg.epochs))
    history, snapshots, t_start = [], {}, time.perf_counter()
    unfitted = torch.randn(len(val), latent_size, generator=torch_generator(seed, "ad", "unfitted-val-codes")).to(device) * cfg.code_init_std
    """Random codes for the validation images, never fitted: the "meaningless" curve drawn beside the fitted one."""
    if track is not None:  # epoch 0: the untrained decoder on the initial codes
        with torch.no_grad():
            decoder.eval()
            snapshots[0] = decoder(latents(track.to(device))).cpu()
    bar = tqdm(range(cfg.epochs), desc="train ad", unit="epoch", disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        seed_global(seed, "ad", "epoch", epoch)
        generator = torch_generator(seed, "ad", "batches", epoch)
        set_learning_rates(optimizer, (cfg.lr_decoder, cfg.lr_codes), lr_factor(epoch, cfg.lr_halve_every))
        decoder.train()

        def step(i: int, index: torch.Tensor, _) -> dict:
            stats = training_step(decoder, latents, index.to(device), pixel_observations(train[index].to(device)), squared_error, optimizer, cfg.code_reg_weight)
            return {"data": stats.data, "prior": stats.prior}

        sums = run_epoch(epoch_batches(len(train), cfg.batch_size, generator), step).means
        weight_l2 = 0.5 * cfg.weight_decay * sum(p.detach().pow(2).sum().item() for p in decoder.parameters())
        row = {"epoch": epoch + 1, "train": sums["data"], "prior": sums["prior"], "weight_l2": weight_l2, "val": float("nan"), "val_unfitted": float("nan")}
        if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
            _, val_losses = fit_codes(decoder, val, None, latent_size, val_fit)
            row["val"] = val_losses.mean().item()
            with torch.no_grad():
                decoder.eval()
                row["val_unfitted"] = torch.cat([(decoder(unfitted[i : i + 500]) - val[i : i + 500].to(device)).pow(2).flatten(1).mean(1) for i in range(0, len(val), 500)]).mean().item()
        if track is not None and epoch + 1 in marks:
            with torch.no_grad():
                decoder.eval()
                snapshots[epoch + 1] = decoder(latents(track.to(device))).cpu()
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        bar.set_postfix(train=f"{row['train']:.4f}", val=f"{row['val']:.4f}")
    decoder.eval()
    return latents, TrainResult(history, time.perf_counter() - t_start, snapshots)
