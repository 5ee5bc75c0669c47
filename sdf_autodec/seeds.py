"""Seeds without torch: every random draw of the project is keyed here (``core/seeding.py`` adds torch's).

A key is a non-negative integer or a string (a purpose or a name, hashed with CRC-32), so that a
shape's draws depend on its name and the run's seed, never on the order or the batch it came in:

    rng = keyed_rng(seed, "chair_003")        # numpy Generator of that shape
    derive_seed(seed, "sampling", epoch)      # one 63-bit integer seed
"""

from __future__ import annotations

import zlib

import numpy as np

SeedKey = int | str


def entropy(*keys: SeedKey) -> list[int]:
    """The integers ``keys`` stand for (strings by CRC-32)."""
    return [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]


def keyed_rng(*keys: SeedKey) -> np.random.Generator:
    """A numpy ``Generator`` determined by ``keys`` (``default_rng`` of their entropy)."""
    return np.random.default_rng(entropy(*keys))


def derive_seed(*keys: SeedKey) -> int:
    """A 63-bit seed determined by ``keys`` (e.g. ``(run_seed, "sampling", epoch)``), independent across keys."""
    state = np.random.SeedSequence(entropy(*keys)).generate_state(2, dtype=np.uint32)
    return int(state.view(np.uint64)[0] >> np.uint64(1))
