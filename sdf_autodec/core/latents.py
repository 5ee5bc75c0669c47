"""The latent table: one trainable code per training instance."""

from __future__ import annotations

import torch
from torch import nn


class LatentTable(nn.Module):
    """``num`` codes of size ``dim``, initialised from ``N(0, init_std²)``.

    ``max_norm``: if set, codes looked up are renormalised in place to at most this norm (as
    ``nn.Embedding`` does; DeepSDF caps its codes at norm 1).
    ``forward(index: (B,)) -> (B, dim)``.
    """

    def __init__(self, num: int, dim: int, init_std: float, max_norm: float | None = None, generator: torch.Generator | None = None):
        super().__init__()
        if num < 1 or dim < 1:
            raise ValueError(f"latent table needs num >= 1 and dim >= 1, got {num} x {dim}")
        self.embedding = nn.Embedding(num, dim, max_norm=max_norm)
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, init_std, generator=generator)

    @property
    def weight(self) -> torch.Tensor:
        """All codes, ``(num, dim)``."""
        return self.embedding.weight

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.embedding(index)
