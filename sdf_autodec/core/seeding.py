"""Seeds for torch: generators and the global RNG, from the keys of :mod:`sdf_autodec.seeds`."""

from __future__ import annotations

import torch

from sdf_autodec.seeds import SeedKey, derive_seed

__all__ = ["SeedKey", "derive_seed", "torch_generator", "seed_global"]


def torch_generator(*keys: SeedKey, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from ``keys``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*keys))
    return g


def seed_global(*keys: SeedKey) -> None:
    """Seed torch's global RNG (used by dropout) from ``keys``."""
    torch.manual_seed(derive_seed(*keys))
