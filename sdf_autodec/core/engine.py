"""Joint training of a decoder and its latent table: one optimisation step.

The objective per instance k in the batch is ``data_k + code_regulariser(z_k)``, where ``data_k`` is
the weighted mean of the domain's per-element loss; the batch loss is their mean. Weight decay on the
decoder is the optimiser's (an L2 term on its weights).

Several processes (``torch.distributed``, e.g. under ``torchrun``) train one model together when
each holds a shard of a global batch: the decoder and the latent table are wrapped together in one
:class:`Autodecoder` module, which DistributedDataParallel wraps, so the gradients of the decoder
*and of the latent table* (dense, zero outside the batch) are averaged over the processes in its
all-reduce. Every process then takes the same Adam step on the same replicated state: weights and
codes stay identical everywhere without any other synchronisation. See :class:`GlobalBatch`, which
:func:`training_step` takes as ``shard``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from sdf_autodec.core.latents import LatentTable
from sdf_autodec.core.observations import ElementLoss, Observations, instance_data_loss
from sdf_autodec.core.prior import code_regulariser


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or inf."""


@dataclass
class StepStats:
    """Mean losses of one step over the instances in its (global) batch."""

    loss: float
    data: float
    prior: float


@dataclass(frozen=True)
class GlobalBatch:
    """The global batch a process trains a shard of, under DistributedDataParallel (one object for
    :func:`training_step`'s ``shard``)."""

    index: torch.Tensor
    """``(G,)`` instance ids of the whole global batch, the same on every process (the code cap of
    :func:`renorm_codes_` runs on all of them, so every replica of the table stays equal)."""
    reduce: Callable[[torch.Tensor], torch.Tensor]
    """A tensor summed over the processes (an all-reduce; every process gets the sum)."""

    @property
    def size(self) -> int:
        return len(self.index)


class Autodecoder(nn.Module):
    """A decoder and its latent table as one module: what DistributedDataParallel (or
    ``torch.compile``) wraps, so that the codes' gradients are all-reduced with the decoder's.

    ``forward(index: (B,), queries: (B, N, d_in)) -> (codes: (B, D), predictions)``. The lookup does
    not renormalise; :func:`renorm_codes_` caps the codes of a batch before its step.
    """

    def __init__(self, decoder: nn.Module, latents: LatentTable):
        super().__init__()
        self.decoder = decoder
        self.latents = latents

    def forward(self, index: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = nn.functional.embedding(index, self.latents.weight)
        return codes, self.decoder(codes, queries)


def renorm_codes_(latents: LatentTable, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Cap the codes ``latents[index]`` at the table's ``max_norm`` in place (what ``nn.Embedding``
    does at lookup; a no-op without ``max_norm``). Every process of a distributed run calls it with
    the whole global batch, so that all replicas of the table stay equal.

    Returns ``(rows, previous codes)`` to undo it with, or ``None`` when nothing was done.
    """
    embedding = latents.embedding
    if embedding.max_norm is None or index.numel() == 0:
        return None
    with torch.no_grad():
        rows = index.unique()
        previous = embedding.weight[rows].clone()
        torch.embedding_renorm_(embedding.weight, rows, embedding.max_norm, embedding.norm_type)
    return rows, previous


def make_optimizer(decoder: nn.Module, latents: LatentTable, lr_decoder: float, lr_codes: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with two parameter groups, ``decoder`` (index 0, with weight decay) and ``codes`` (index 1)."""
    return torch.optim.Adam(
        [
            {"params": list(decoder.parameters()), "lr": lr_decoder, "weight_decay": weight_decay, "name": "decoder"},
            {"params": list(latents.parameters()), "lr": lr_codes, "weight_decay": 0.0, "name": "codes"},
        ]
    )


def training_step(
    decoder: nn.Module,
    latents: LatentTable,
    index: torch.Tensor,
    obs: Observations,
    element_loss: ElementLoss,
    optimizer: torch.optim.Optimizer,
    code_reg_weight: float,
    *,
    model: nn.Module | None = None,
    shard: GlobalBatch | None = None,
    autocast_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> StepStats:
    """One joint update of the decoder and of the codes ``latents[index]``.

    ``index: (B,)`` instance ids of the batch; ``obs`` holds B instances in the same order.
    Raises :class:`NonFiniteLoss` (before updating anything) when the loss is NaN or inf.

    Optional, for speed and scale:

    - ``model``: what runs the forward pass, an :class:`Autodecoder` of ``decoder`` and ``latents``
      or a wrapper of one (DistributedDataParallel, ``torch.compile``); default: a plain one.
    - ``shard``: this process holds ``index`` out of the global batch ``shard.index``, split over
      the processes of a DDP ``model``. The local loss is ``sum / G * world``, so DDP's gradient
      average is the gradient of the global batch's mean; ``shard.reduce`` sums the statistics and
      the NaN check over the processes, so every process stops together.
    - ``autocast_dtype``: run the forward pass under ``torch.autocast`` (bf16 or fp16); the
      predictions are cast to fp32 before the loss. ``scaler``: a GradScaler (fp16).
    """
    optimizer.zero_grad(set_to_none=True)
    undo = renorm_codes_(latents, index if shard is None else shard.index)
    model = Autodecoder(decoder, latents) if model is None else model
    amp = torch.autocast(obs.queries.device.type, dtype=autocast_dtype) if autocast_dtype is not None else contextlib.nullcontext()
    with amp:
        codes, predictions = model(index, obs.queries)
    codes, predictions = codes.float(), predictions.float()
    per_element = element_loss(predictions, obs)
    if per_element.shape[0] == 0:  # an empty shard of a global batch: still in the graph, so DDP's all-reduce runs
        data = per_element.sum(dim=tuple(range(1, per_element.dim())))
    else:
        data = instance_data_loss(per_element, obs.weights)  # (B,)
    prior = code_regulariser(codes, code_reg_weight)  # (B,)
    per_instance = data + prior
    if shard is None:
        loss = per_instance.mean()
        stats = torch.stack([loss, data.mean(), prior.mean()]).detach()
    else:
        world = 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
        loss = per_instance.sum() * (world / shard.size)
        stats = torch.stack([per_instance.sum(), data.sum(), prior.sum()]).detach()
        stats = shard.reduce(stats) / shard.size
    values = stats.tolist()  # one device sync per step
    if not all(map(_finite, values)):
        if undo is not None:  # leave the state exactly as it was before this step
            with torch.no_grad():
                latents.weight[undo[0]] = undo[1]
        raise NonFiniteLoss(f"loss is {values[0]}")
    backward_and_step(loss, optimizer, scaler)
    return StepStats(loss=values[0], data=values[1], prior=values[2])


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None = None) -> None:
    """Back-propagate ``loss`` and take the optimiser's step, through fp16's gradient ``scaler`` when one is given."""
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")
