"""Self-describing checkpoints, written atomically and loaded without unpickling arbitrary objects.

A checkpoint is a plain dict of tensors and primitives (loaded with ``torch.load(weights_only=True)``):

- ``schema_version``: :data:`SCHEMA_VERSION`; ``kind``: what produced it (e.g. ``"shapes"``);
- ``config``: the run's configuration as plain dicts/lists/scalars, enough to rebuild the model;
- ``epoch``: epochs completed; ``decoder``: its ``state_dict``; ``latents``: ``(N, D)`` codes;
- ``instance_ids``: the N instance names, in the order of the latent rows;
- ``optimizer``: the optimiser's ``state_dict`` (for resuming); ``extra``: anything else plain.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdf_autodec.atomic import atomic_write
from sdf_autodec.core.latents import LatentTable
from sdf_autodec.errors import first_line

SCHEMA_VERSION = 1
REQUIRED_KEYS = ("schema_version", "kind", "config", "epoch", "decoder", "latents", "instance_ids")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, of another schema, or incompatible with the config."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (see module docstring) atomically; ``schema_version`` is filled in."""
    missing = [k for k in REQUIRED_KEYS if k != "schema_version" and k not in payload]
    if missing:
        raise ValueError(f"checkpoint payload lacks {missing}")
    payload = {**payload, "schema_version": SCHEMA_VERSION}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): {first_line(e)}") from None
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not an sdf-autodec checkpoint (missing keys)")
    if payload["schema_version"] != SCHEMA_VERSION:
        raise CheckpointError(f"{path}: checkpoint schema {payload['schema_version']}, this version reads {SCHEMA_VERSION}")
    if kind is not None and payload["kind"] != kind:
        raise CheckpointError(f"{path}: a {payload['kind']!r} checkpoint, expected {kind!r}")
    return payload


@dataclass
class TrainingState:
    """What a training checkpoint holds, live: everything a step depends on, so that a run resumed
    from its checkpoint ends with the same weights and codes as one never stopped."""

    kind: str
    """What trains it (``"shapes"``): a checkpoint of another kind is refused on loading."""
    config: dict
    """The run's configuration as plain dicts/lists/scalars (what ``weights_only`` loading accepts)."""
    decoder: nn.Module
    latents: LatentTable
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    """fp16's gradient scaler (its loss scale is part of the state), or None."""
    ids: list[str]
    """Instance names, in the order of the latent rows."""

    def payload(self, epoch: int, **extra) -> dict[str, Any]:
        """The checkpoint dict after ``epoch`` epochs; ``extra`` (plain values) goes under ``"extra"``."""
        return {
            "kind": self.kind,
            "config": self.config,
            "epoch": epoch,
            "decoder": self.decoder.state_dict(),
            "latents": self.latents.weight.detach().cpu(),
            "optimizer": self.optimizer.state_dict(),
            "instance_ids": self.ids,
            "extra": {"scaler": self.scaler.state_dict() if self.scaler is not None else None, **extra},
        }

    def restore(self, ckpt: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Load a checkpoint's weights, codes, optimiser moments and loss scale into this state (whose
        model and instances the caller has checked); returns ``(epochs done, extra)``."""
        self.decoder.load_state_dict(ckpt["decoder"])
        with torch.no_grad():
            self.latents.weight.copy_(ckpt["latents"].to(self.latents.weight.device))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        extra = ckpt.get("extra") or {}
        if self.scaler is not None and extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        return int(ckpt["epoch"]), extra
