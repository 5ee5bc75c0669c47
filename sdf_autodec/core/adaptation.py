"""Test-time adaptation of the decoder: after a code is fitted, a copy of the decoder is tuned to one
instance, so that what was observed survives (GAN inversion's "pivotal tuning", applied to an
autodecoder).

A fitted code reaches only what the training shapes span: on a table unlike any of them the fit
keeps the prior's legs and loses even the observed top. Here the code stays fixed (the pivot) and
the decoder's weights move, for ``iterations`` Adam steps on

    data(f_θ(z, ·), obs)  +  anchor_weight · mean_a |clamp f_θ(z, a) - clamp f_θ₀(z, a)|

where the anchor points ``a`` are drawn uniformly in ``[-half_size, half_size]^d`` (the box the shape
is meshed in; fresh at every step, seeded) and ``f_θ₀`` is the decoder as trained: away from the observations
the adapted shape stays the prior's completion, near them the data wins (it has many more points
there). The clamp is the loss's own (``element_loss`` is applied to the anchor as to the data).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from sdf_autodec.core.fitting import frozen
from sdf_autodec.core.observations import ElementLoss, Observations, instance_data_loss


@dataclass
class AdaptConfig:
    """Decoder adaptation to one instance after its code is fitted (off with ``iterations=0``)."""

    iterations: int = 0
    """Adam steps on the decoder's weights; 0: the decoder is not adapted."""
    lr: float = 1e-3
    """Learning rate of the weights (on 4 DVR tables: 1e-4 changed little, 3e-3 diverged)."""
    anchor_points: int = 4000
    """Uniform points per step where the adapted decoder must agree with the trained one."""
    anchor_weight: float = 0.1
    """Weight of that agreement against the data term (on 4 DVR tables from one view 0.1 measured
    better than 1 and than 0.01)."""


@dataclass
class Adapted:
    """One instance's adapted decoder and its data loss before and after."""

    decoder: nn.Module
    data_loss_before: float
    data_loss_after: float


def adapt_decoder(
    decoder: nn.Module, code: torch.Tensor, obs: Observations, element_loss: ElementLoss, cfg: AdaptConfig, generator: torch.Generator,
    half_size: float = 1.0,
) -> Adapted:
    """A copy of ``decoder`` tuned to one instance: ``code: (1, D)``, ``obs`` with K = 1 and queries
    ``(1, N, d)``. ``decoder`` itself is left untouched; ``generator`` (CPU) draws the anchor points in
    ``[-half_size, half_size]^d``.
    With ``cfg.iterations == 0`` the copy is the decoder as it is."""
    if obs.num_instances != 1 or code.shape[0] != 1:
        raise ValueError(f"adapt_decoder adapts one instance at a time, got {obs.num_instances} observed and {code.shape[0]} codes")
    device = obs.targets.device
    code = code.detach().to(device)
    dim = obs.queries.shape[-1]
    adapted = copy.deepcopy(decoder)
    adapted.eval()  # no dropout: the adapted decoder is used as a function, as at fitting time
    for p in adapted.parameters():
        p.requires_grad_(True)

    def data_loss(net: nn.Module) -> torch.Tensor:
        return instance_data_loss(element_loss(net(code, obs.queries), obs), obs.weights)[0]

    optimizer = torch.optim.Adam(adapted.parameters(), lr=cfg.lr)
    with frozen(decoder):  # the trained decoder: the reference, never updated
        with torch.no_grad():
            before = float(data_loss(decoder))
        for _ in range(cfg.iterations):
            anchors = (torch.rand(1, cfg.anchor_points, dim, generator=generator) * 2 - 1).mul_(half_size).to(device)
            with torch.no_grad():
                reference = decoder(code, anchors).squeeze(-1)  # (1, A)
            anchor = element_loss(adapted(code, anchors), Observations(queries=anchors, targets=reference)).mean()
            optimizer.zero_grad(set_to_none=True)
            (data_loss(adapted) + cfg.anchor_weight * anchor).backward()
            optimizer.step()
    for p in adapted.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        after = float(data_loss(adapted))
    return Adapted(adapted, before, after)
