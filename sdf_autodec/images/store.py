"""The image study's files: its trained models (core checkpoints) and its cache of fitted test codes.

::

    DIR/models/<name>.pt          one model each: ``ae``, ``ae_masked_loss_center<S>``,
                                  ``ae_mask_trained_<mask>``, ``ae_equal_time`` (kind ``mnist-ae``: the
                                  ``decoder`` entry holds the whole autoencoder), ``ad`` (kind ``mnist-ad``:
                                  decoder + codes) and ``classifier`` (kind ``mnist-classifier``; its own
                                  signature: its recipe and seed)
    DIR/models/ad_test_codes.pt   the autodecoder's codes of the unmasked test images (only a cache)

A model is loaded only into a study with the same networks, data and seed (its ``signature``). The
cache is used only when its key matches: the signature, the fitting recipe, the test images and a
SHA-256 of the decoder's weights (bytes, so two different decoders cannot share a key).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import torch

from sdf_autodec.atomic import atomic_write
from sdf_autodec.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of ``module``'s parameters and buffers: names, dtypes, shapes and bytes, in order."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


class ModelStore:
    """``DIR/models/<name>.pt``, written and read through the core's checkpoints."""

    def __init__(self, folder: str | Path, signature: dict):
        self.folder = Path(folder)
        self.signature = json.loads(json.dumps(signature))  # plain types, as stored
        """What a model must have been trained with to be loaded here (networks, data, seed)."""

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.pt"

    def save(self, name: str, kind: str, module: torch.nn.Module, epochs: int, latents: torch.Tensor, ids: list[str]) -> None:
        """``module``'s weights and the ``latents: (N, D)`` of instances ``ids`` (none for an AE: ``(0, D)``)."""
        payload = {
            "kind": kind, "config": self.signature, "epoch": epochs, "decoder": module.state_dict(),
            "latents": latents.detach().cpu(), "instance_ids": ids,
        }
        save_checkpoint(self.path(name), payload)

    def load(self, name: str, kind: str) -> dict:
        """The checkpoint ``name`` of ``kind``; one line when it is missing, of another kind, or trained otherwise."""
        path = self.path(name)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model not found; run the training stages first (stages=[train-ae,train-ad,...])")
        ckpt = load_checkpoint(path, kind=kind)
        if ckpt["config"] != self.signature:
            raise CheckpointError(f"{path}: trained with another network, data or seed than this run asks for; retrain it")
        return ckpt


class CodeCache:
    """One cached tensor of codes at ``path``, valid for one key (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self, key: str) -> torch.Tensor | None:
        """The codes stored under ``key``, or None (absent, unreadable or another key: fit again)."""
        if not self.path.is_file():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile):
            return None
        if not isinstance(saved, dict) or saved.get("key") != key or not isinstance(saved.get("codes"), torch.Tensor):
            return None
        return saved["codes"]

    def write(self, key: str, codes: torch.Tensor) -> None:
        payload = {"codes": codes.detach().cpu(), "key": key}
        atomic_write(self.path, lambda tmp: torch.save(payload, tmp))
