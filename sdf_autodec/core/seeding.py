"""Seeds: every random thing in the project draws from a seed derived here."""

from __future__ import annotations

import numpy as np
import torch


def derive_seed(*keys: int) -> int:
    """A 63-bit seed determined by ``keys`` (e.g. ``(run_seed, epoch)``), independent across keys."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


def torch_generator(*keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from ``keys``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*keys))
    return g


def seed_global(*keys: int) -> None:
    """Seed torch's global RNG (used by dropout) from ``keys``."""
    torch.manual_seed(derive_seed(*keys))
