"""Do uninformative inputs collapse to the mean? The same decoder fed codes of different origins.

A decoder trained with a squared error on inputs that carry no information about *which* image is
the target can do no better than the conditional mean of the targets given what the input does
carry: fresh noise carries nothing (optimum: the global mean image), a class label plus noise carries
the class (optimum: the class mean), an all-zero input to an autoencoder carries nothing (the global
mean again). Codes that are fixed per image carry the image's identity, so a decoder can in principle
memorise the training images from them, but nothing ties two similar images to similar codes; learned
codes (the autodecoder) are moved towards each other by the decoder's gradient. The rows
(:data:`SOURCES`), on the study's decoder (:class:`~sdf_autodec.nn.conv.CoordConvDecoder`):

- ``noise``: a fresh ``N(0, I)`` code at every step (``D`` dimensions);
- ``onehot_noise``: the image's one-hot digit label (10 dimensions) concatenated with fresh ``N(0, I)``
  noise (``D`` dimensions): the decoder takes ``D + 10`` inputs;
- ``fixed_random``: one ``N(0, σ² I)`` code per training image (σ the AD's initial std), drawn once and
  never updated; only the decoder learns.

The autoencoder rows (the plain AE, and an AE trained on all-zero inputs) and the autodecoder row
come from the study's own models. Measured per row on the training and test images: MSE to the truth,
MSE of the outputs to the global mean image and to each image's class mean, and the variance of the
outputs across images (mean over pixels).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from sdf_autodec.core.seeding import torch_generator
from sdf_autodec.core.training import epoch_batches, run_epoch

SOURCES = ("noise", "onehot_noise", "fixed_random")

CodeSource = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""``source(index: (B,), generator) -> (B, D')`` codes of the training images ``index``."""


@dataclass
class CollapseConfig:
    """Training of the decoders of the collapse table (the AE rows use the study's ``ae`` recipe)."""

    epochs: int = 10
    """Passes over the training images per decoder (the optima of the uninformative rows are reached
    within a few; the fixed-code row would keep improving on the training images with more)."""
    batch_size: int = 64
    lr: float = 2e-3
    """Adam's learning rate, halved after half the epochs."""


def code_source(kind: str, latent_size: int, labels: torch.Tensor, code_std: float, seed: int) -> CodeSource:
    """The codes the decoder of row ``kind`` is fed for training images ``index`` (labels ``(N,)``)."""
    if kind == "noise":
        return lambda index, g: torch.randn(len(index), latent_size, generator=g)
    if kind == "onehot_noise":
        return lambda index, g: torch.cat([nn.functional.one_hot(labels[index], 10).float(), torch.randn(len(index), latent_size, generator=g)], dim=1)
    if kind == "fixed_random":
        table = torch.randn(len(labels), latent_size, generator=torch_generator(seed, "collapse", "fixed-codes")) * code_std
        return lambda index, g: table[index]
    raise ValueError(f"unknown code source {kind!r}; choose one of {', '.join(SOURCES)}")


def input_size(kind: str, latent_size: int) -> int:
    """The decoder's input width for row ``kind``."""
    return latent_size + 10 if kind == "onehot_noise" else latent_size


def train_on_codes(decoder: nn.Module, images: torch.Tensor, source: CodeSource, cfg: CollapseConfig, seed: int, name: str, progress: bool = True) -> dict:
    """Train ``decoder`` alone (the codes are given, never learned) to map ``source``'s codes of
    ``images: (N, C, S, S)`` to the images; returns ``{"history": [{"epoch", "train"}], "seconds"}``."""
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ValueError(f"impossible collapse training: epochs={cfg.epochs}, batch_size={cfg.batch_size}")
    device = next(decoder.parameters()).device
    optimizer = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    history, t0 = [], time.perf_counter()
    for epoch in tqdm(range(cfg.epochs), desc=f"train {name}", unit="epoch", disable=not progress):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * (0.5 if epoch >= cfg.epochs // 2 else 1.0)
        generator = torch_generator(seed, "collapse", name, epoch)
        decoder.train()

        def step(i: int, index: torch.Tensor, _) -> dict:
            codes, x = source(index, generator).to(device), images[index].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = (decoder(codes) - x).pow(2).mean()
            loss.backward()
            optimizer.step()
            return {"train": loss.item()}

        history.append({"epoch": epoch + 1, **run_epoch(epoch_batches(len(images), cfg.batch_size, generator), step).means})
    decoder.eval()
    return {"history": history, "seconds": time.perf_counter() - t0}


def class_means(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(10, C, S, S)``: the mean image of each digit (zeros for a digit with no image)."""
    out = torch.zeros(10, *images.shape[1:])
    for digit in range(10):
        chosen = images[labels == digit]
        if len(chosen):
            out[digit] = chosen.mean(0)
    return out


def collapse_scores(outputs: torch.Tensor, truth: torch.Tensor, labels: torch.Tensor, global_mean: torch.Tensor, means_by_class: torch.Tensor) -> dict[str, float]:
    """For ``outputs, truth: (N, C, S, S)`` (outputs clamped to [0, 1]) of digits ``labels: (N,)``:
    ``mse_truth``, ``mse_global_mean`` (to ``global_mean: (1, C, S, S)``), ``mse_class_mean`` (to
    ``means_by_class[labels]``) and ``output_variance`` (variance across the N outputs, mean over pixels)."""
    out = outputs.clamp(0.0, 1.0)
    return {
        "mse_truth": (out - truth).pow(2).mean().item(),
        "mse_global_mean": (out - global_mean).pow(2).mean().item(),
        "mse_class_mean": (out - means_by_class[labels]).pow(2).mean().item(),
        "output_variance": out.var(dim=0, unbiased=False).mean().item(),
    }
