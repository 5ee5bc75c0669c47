"""Joint training of a decoder and its latent table: one optimisation step.

The objective per instance k in the batch is ``data_k + code_regulariser(z_k)``, where ``data_k`` is
the weighted mean of the domain's per-element loss; the batch loss is their mean. Weight decay on the
decoder is the optimiser's (an L2 term on its weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sdf_autodec.core.latents import LatentTable
from sdf_autodec.core.observations import ElementLoss, Observations, instance_data_loss
from sdf_autodec.core.prior import code_regulariser


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or inf."""


@dataclass
class StepStats:
    """Mean losses of one step over the instances in its batch."""

    loss: float
    data: float
    prior: float


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
) -> StepStats:
    """One joint update of the decoder and of the codes ``latents[index]``.

    ``index: (B,)`` instance ids of the batch; ``obs`` holds B instances in the same order.
    Raises :class:`NonFiniteLoss` (before updating anything) when the loss is NaN or inf.
    """
    optimizer.zero_grad(set_to_none=True)
    codes = latents(index)  # (B, D)
    predictions = decoder(codes, obs.queries)
    data = instance_data_loss(element_loss(predictions, obs), obs.weights)  # (B,)
    prior = code_regulariser(codes, code_reg_weight)  # (B,)
    loss = (data + prior).mean()
    if not torch.isfinite(loss):
        raise NonFiniteLoss(f"loss is {loss.item()}")
    loss.backward()
    optimizer.step()
    return StepStats(loss=loss.item(), data=data.mean().item(), prior=prior.mean().item())
