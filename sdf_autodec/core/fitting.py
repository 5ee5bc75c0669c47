"""Batched latent fitting: K codes optimised against a frozen decoder, one forward/backward per step.

The objective is the sum over instances of ``data_k + code_regulariser(z_k)``. Each code only enters
its own term, and Adam's update is elementwise, so fitting K instances together gives the same codes
as fitting each alone (up to float rounding in batched matrix products).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from sdf_autodec.core.observations import ElementLoss, Observations, instance_data_loss
from sdf_autodec.core.prior import code_regulariser
from sdf_autodec.core.seeding import torch_generator


@dataclass
class FitConfig:
    """Test-time optimisation of codes (DeepSDF's reconstruction recipe by default)."""

    iterations: int = 800
    """Adam steps."""
    lr: float = 5e-3
    """Initial learning rate of the codes."""
    lr_drop_at: float = 0.5
    """Fraction of the iterations after which the learning rate is divided by ``lr_drop_factor``."""
    lr_drop_factor: float = 10.0
    """Divisor applied to the learning rate at ``lr_drop_at``."""
    init_std: float = 0.01
    """Standard deviation of the initial codes."""
    code_reg_weight: float = 1e-4
    """Weight of the code prior; the same definition as in training (see ``core.prior``)."""
    seed: int = 0
    """Seed of the initial codes."""


@dataclass
class FitResult:
    """Fitted codes and their objective at the last step."""

    codes: torch.Tensor
    """``(K, D)`` fitted codes (detached)."""
    losses: torch.Tensor
    """``(K,)`` final objective per instance (data + prior)."""
    data_losses: torch.Tensor
    """``(K,)`` final data term per instance."""
    history: torch.Tensor
    """``(iterations, K)`` objective per instance at every step."""


@contextlib.contextmanager
def frozen(module: nn.Module):
    """Eval mode (no dropout) and no parameter gradients inside the block; restored afterwards."""
    was_training = module.training
    flags = [p.requires_grad for p in module.parameters()]
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        module.train(was_training)
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def initial_codes(num: int, latent_size: int, cfg: FitConfig, device: str | torch.device = "cpu") -> torch.Tensor:
    """``(num, D)`` starting codes from ``N(0, init_std²)``, seeded by ``cfg.seed``."""
    g = torch_generator(cfg.seed)
    return (torch.randn(num, latent_size, generator=g) * cfg.init_std).to(device)


def fit_latents(
    decoder: nn.Module,
    obs: Observations,
    element_loss: ElementLoss,
    latent_size: int,
    cfg: FitConfig,
    init: torch.Tensor | None = None,
) -> FitResult:
    """Fit one code per instance of ``obs`` (K instances) with ``decoder`` frozen.

    ``init: (K, D)`` starting codes; drawn with :func:`initial_codes` when omitted.
    """
    k = obs.num_instances
    device = obs.targets.device
    codes = (initial_codes(k, latent_size, cfg, device) if init is None else init.detach().clone().to(device)).requires_grad_(True)
    optimizer = torch.optim.Adam([codes], lr=cfg.lr)
    drop_step = int(cfg.iterations * cfg.lr_drop_at)
    history = torch.empty(cfg.iterations, k)
    data = prior = torch.zeros(k)
    with frozen(decoder):
        for step in range(cfg.iterations):
            if step == drop_step and step > 0:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr / cfg.lr_drop_factor
            optimizer.zero_grad(set_to_none=True)
            predictions = decoder(codes, obs.queries)
            data = instance_data_loss(element_loss(predictions, obs), obs.weights)  # (K,)
            prior = code_regulariser(codes, cfg.code_reg_weight)  # (K,)
            total = data + prior
            total.sum().backward()
            optimizer.step()
            history[step] = total.detach().cpu()
    return FitResult(codes=codes.detach(), losses=(data + prior).detach(), data_losses=data.detach(), history=history)
