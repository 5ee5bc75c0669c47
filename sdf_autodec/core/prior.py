"""The code prior: ONE definition, used by training and by test-time fitting alike.

DeepSDF trains with ``λ · mean over samples of ||z||²`` but fits with ``λ · mean(z²)`` (a factor D
apart). Here both call :func:`code_regulariser`: ``λ ||z||²`` per instance, added to that
instance's mean data loss. This is the negative log of a Gaussian prior ``N(0, σ² I)`` on codes,
up to a constant, with ``λ = 1 / (2 σ² N)`` for N observations per instance.
"""

from __future__ import annotations

import torch


def code_regulariser(codes: torch.Tensor, weight: float) -> torch.Tensor:
    """``codes: (K, D)`` → ``(K,)``: ``weight * ||z_k||²``."""
    return weight * codes.pow(2).sum(dim=-1)
