"""Seeds: every random thing in the project draws from a seed derived here."""

from __future__ import annotations

import zlib

import numpy as np
import torch

SeedKey = int | str


def derive_seed(*keys: SeedKey) -> int:
    """A 63-bit seed determined by ``keys`` (e.g. ``(run_seed, "sampling", epoch)``), independent across keys.

    Keys are non-negative integers or strings (a string names a purpose, hashed with CRC-32).
    """
    entropy = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return int(state.view(np.uint64)[0] >> np.uint64(1))


def torch_generator(*keys: SeedKey, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from ``keys``."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(*keys))
    return g


def seed_global(*keys: SeedKey) -> None:
    """Seed torch's global RNG (used by dropout) from ``keys``."""
    torch.manual_seed(derive_seed(*keys))
