"""Batched latent fitting: K codes optimised against a frozen decoder, one forward/backward per step.

The objective is the sum over instances of ``data_k + code_regulariser(z_k)``. Each code only enters
its own term, and Adam's update is elementwise, so fitting K instances together gives the same codes
as fitting each alone (up to float rounding in batched matrix products). Each instance returns its
best codes seen; with ``patience`` it stops on its own, and with ``restarts`` the best start wins.

Observations may be fixed (one batch for every step) or redrawn at every step (``sample``, as
DeepSDF's reconstruction redraws its 8000 SDF samples per iteration); the objective that picks the
best codes is then the step's own, and the final one is measured on ``obs``. A good start can come
from a table of known codes (``nearest_codes``: the code whose objective on each instance is lowest).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

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
    patience: int = 0
    """Per-instance early stopping: an instance stops after this many steps without its objective
    improving by ``min_delta`` (relative) on its best; 0 disables it. Stopped instances leave the
    forward pass, so a batch gets cheaper as its instances finish."""
    min_delta: float = 1e-3
    """Relative improvement that counts for early stopping."""
    restarts: int = 1
    """Independent starts per instance (DeepSDF's paper: best of 2); the lowest final objective wins."""


@dataclass
class FitResult:
    """Fitted codes and their objective at the last step."""

    codes: torch.Tensor
    """``(K, D)`` fitted codes (detached): each instance's best over its steps (and restarts)."""
    losses: torch.Tensor
    """``(K,)`` objective per instance (data + prior) of those codes."""
    data_losses: torch.Tensor
    """``(K,)`` data term per instance of those codes."""
    history: torch.Tensor
    """``(iterations, K)`` objective per instance at every step (NaN after an instance stopped)."""
    steps: torch.Tensor
    """``(K,)`` steps each instance ran before it stopped."""


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


def keyed_initial_codes(keys: list[tuple], latent_size: int, init_std: float, device: str | torch.device = "cpu") -> torch.Tensor:
    """``(len(keys), D)`` starting codes from ``N(0, init_std²)``, each from the generator of its own
    key (e.g. ``(seed, shape_name)``), so that an instance's start does not depend on its batch."""
    return torch.stack([torch.randn(latent_size, generator=torch_generator(*k)) for k in keys]).to(device) * init_std


Sampler = Callable[[int, int], Observations]
"""``sample(restart, step) -> Observations`` of all K instances, in order: a step's observations."""


@torch.no_grad()
def nearest_codes(
    decoder: nn.Module,
    table: torch.Tensor,
    obs: Observations,
    element_loss: ElementLoss,
    probe: Observations | None = None,
    shortlist: int = 16,
    with_loss: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """For each of the K instances of ``obs``, the row of ``table: (T, D)`` whose data loss on it is
    lowest: ``(K,)`` (and, ``with_loss``, that loss ``(K,)``).

    Retrieval of a known code by what was observed: the start of a fit (DeepSDF starts from noise)
    and a baseline of its own. With ``probe`` (a subset of ``obs``, e.g. a few hundred of its
    queries), every row is first tried on ``probe`` and only each instance's ``shortlist`` best on all
    of ``obs``: T passes of the probe and ``shortlist`` of ``obs``, instead of T of ``obs``.
    """
    k = obs.num_instances
    with frozen(decoder):
        def losses_of(rows: torch.Tensor, on: Observations) -> torch.Tensor:  # rows: (K,) a table row per instance
            return instance_data_loss(element_loss(decoder(table[rows], on.queries), on), on.weights)

        every = torch.arange(len(table), device=table.device)
        if probe is None or len(table) <= shortlist:
            candidates = every[None].expand(k, -1)  # (K, T)
        else:
            first = torch.stack([losses_of(t.expand(k), probe) for t in every], dim=1)  # (K, T)
            candidates = first.topk(shortlist, dim=1, largest=False).indices  # (K, S)
        scores = torch.stack([losses_of(candidates[:, j], obs) for j in range(candidates.shape[1])], dim=1)  # (K, S)
    best = scores.argmin(dim=1, keepdim=True)
    index = candidates.gather(1, best).squeeze(1)
    return (index, scores.gather(1, best).squeeze(1)) if with_loss else index


def fit_latents(
    decoder: nn.Module,
    obs: Observations,
    element_loss: ElementLoss,
    latent_size: int,
    cfg: FitConfig,
    init: torch.Tensor | None = None,
    sample: Sampler | None = None,
) -> FitResult:
    """Fit one code per instance of ``obs`` (K instances) with ``decoder`` frozen.

    ``init: (K, D)`` starting codes (first restart); drawn with :func:`initial_codes` when omitted.
    With ``cfg.restarts > 1`` every further restart starts from fresh codes (seeded by ``cfg.seed``
    and the restart number) and each instance keeps the restart with the lowest objective on ``obs``.
    ``sample``: redraw the observations at every step (module docstring); ``obs`` then only scores
    the result.
    """
    best: FitResult | None = None
    for restart in range(max(1, cfg.restarts)):
        start = init if (init is not None and restart == 0) else None
        if start is None:
            start = initial_codes(obs.num_instances, latent_size, FitConfig(init_std=cfg.init_std, seed=cfg.seed + 7919 * restart), obs.targets.device)
        draw = None if sample is None else (lambda step, r=restart: sample(r, step))
        result = _fit_once(decoder, obs, element_loss, cfg, start, draw)
        if best is None:
            best = result
        else:
            better = result.losses < best.losses
            best = FitResult(
                codes=torch.where(better[:, None], result.codes, best.codes),
                losses=torch.where(better, result.losses, best.losses),
                data_losses=torch.where(better, result.data_losses, best.data_losses),
                history=torch.where(better.cpu()[None], result.history, best.history),
                steps=torch.where(better.cpu(), result.steps, best.steps),
            )
    return best


def _objective(decoder, codes, obs, element_loss, weight) -> tuple[torch.Tensor, torch.Tensor]:
    data = instance_data_loss(element_loss(decoder(codes, obs.queries), obs), obs.weights)  # (K,)
    return data, data + code_regulariser(codes, weight)


def _fit_once(decoder: nn.Module, obs: Observations, element_loss: ElementLoss, cfg: FitConfig, init: torch.Tensor, draw: Callable[[int], Observations] | None = None) -> FitResult:
    k = obs.num_instances
    device = obs.targets.device
    codes = init.detach().clone().to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([codes], lr=cfg.lr)
    drop_step = int(cfg.iterations * cfg.lr_drop_at)
    history = torch.full((cfg.iterations, k), float("nan"))
    best_codes = codes.detach().clone()
    best_loss = torch.full((k,), float("inf"), device=device)
    since_best = torch.zeros(k, dtype=torch.long, device=device)
    steps = torch.zeros(k, dtype=torch.long)
    active = torch.arange(k, device=device)
    with frozen(decoder):
        for step in range(cfg.iterations):
            if len(active) == 0:
                break
            if step == drop_step and step > 0:
                for group in optimizer.param_groups:
                    group["lr"] = cfg.lr / cfg.lr_drop_factor
            optimizer.zero_grad(set_to_none=True)
            step_obs = obs if draw is None else draw(step)
            sub = step_obs if len(active) == k else step_obs.select(active)
            _, total = _objective(decoder, codes[active] if len(active) < k else codes, sub, element_loss, cfg.code_reg_weight)
            total.sum().backward()
            with torch.no_grad():  # the objective of the codes as they were before this update
                loss = total.detach()
                improved = loss < best_loss[active] * (1.0 - cfg.min_delta)
                better = loss < best_loss[active]
                best_codes[active[better]] = codes[active[better]].detach()
                best_loss[active[better]] = loss[better]
                since_best[active] = torch.where(improved, 0, since_best[active] + 1)
                history[step, active.cpu()] = loss.cpu()
                steps[active.cpu()] += 1
            optimizer.step()
            if cfg.patience > 0:
                active = active[since_best[active] < cfg.patience]
    with torch.no_grad(), frozen(decoder):
        # the last update of the instances still running may have helped; stopped instances keep their
        # best (their rows drift with Adam's momentum while the others run, and must not count)
        _, total = _objective(decoder, codes.detach(), obs, element_loss, cfg.code_reg_weight)
        running = torch.zeros(k, dtype=torch.bool, device=device)
        running[active] = True
        # fixed observations: the best codes seen; redrawn ones: each step's objective is its own draw's
        # (a lucky draw is not a better code), so the instances still running keep their last codes
        take = running & (total < best_loss) if draw is None else running
        best_codes = torch.where(take[:, None], codes.detach(), best_codes)
        data_best, total_best = _objective(decoder, best_codes, obs, element_loss, cfg.code_reg_weight)
    return FitResult(codes=best_codes, losses=total_best, data_losses=data_best, history=history, steps=steps)
