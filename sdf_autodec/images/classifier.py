"""The fixed digit classifier that says whether a completed image is still the right digit.

A small convolutional network (the study's own :class:`~sdf_autodec.nn.conv.ConvEncoder` with 10
outputs: three stride-2 convolutions and a linear map to the logits) trained once, with
cross-entropy and Adam, on MNIST's training images (all 60 000 by default, padded as the study pads
them). It is trained independently of the models it judges and never sees the test file, so its
accuracy on a model's completions of test images measures how often the completion keeps the
digit's identity. Its own accuracy on the real test images is reported beside it (the ceiling of
that column).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from sdf_autodec.core.seeding import torch_generator
from sdf_autodec.core.training import epoch_batches, run_epoch
from sdf_autodec.nn.conv import ConvEncoder, ConvNetConfig


@dataclass
class ClassifierConfig:
    """The digit classifier and its training."""

    train_size: int = 0
    """MNIST training images it learns from (0: all 60 000)."""
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    """Feature channels of its three stride-2 convolutions."""
    epochs: int = 3
    """Passes over its training images."""
    batch_size: int = 128
    lr: float = 2e-3
    """Adam's learning rate, halved after each epoch."""


def make_classifier(cfg: ClassifierConfig, image_size: int = 32) -> nn.Module:
    """The network: ``(B, 1, S, S)`` images in [0, 1] → ``(B, 10)`` logits."""
    return ConvEncoder(ConvNetConfig(latent_size=10, image_size=image_size, channels=list(cfg.channels)))


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: ClassifierConfig, seed: int, progress: bool = True) -> dict:
    """Train ``model`` in place on ``images: (N, 1, S, S)``, ``labels: (N,)``; returns
    ``{"history": [{"epoch", "train_loss", "train_accuracy"}, ...], "seconds"}``."""
    if cfg.epochs < 1 or cfg.batch_size < 1 or len(images) == 0:
        raise ValueError(f"impossible classifier training: epochs={cfg.epochs}, batch_size={cfg.batch_size}, {len(images)} images")
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history, t0 = [], time.perf_counter()
    for epoch in tqdm(range(cfg.epochs), desc="train classifier", unit="epoch", disable=not progress):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * 0.5**epoch
        model.train()

        def step(i: int, index: torch.Tensor, _) -> dict:
            x, y = images[index].to(device), labels[index].to(device)
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            return {"train_loss": loss.item(), "train_accuracy": (logits.argmax(1) == y).float().mean().item()}

        stats = run_epoch(epoch_batches(len(images), cfg.batch_size, torch_generator(seed, "classifier", "batches", epoch)), step)
        history.append({"epoch": epoch + 1, **stats.means})
    return {"history": history, "seconds": time.perf_counter() - t0}


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """``images: (N, 1, S, S)`` (clamped to [0, 1] first, as outputs are scored) → ``(N, 10)``
    class probabilities, on CPU."""
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model(images[i : i + batch_size].clamp(0.0, 1.0).to(device)).softmax(1).cpu() for i in range(0, len(images), batch_size)])


def digit_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of ``images: (N, 1, S, S)`` the classifier labels as ``labels: (N,)``."""
    return (predict(model, images).argmax(1) == labels).float().mean().item()
