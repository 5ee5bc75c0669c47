"""What an autodecoder is fitted to: per instance, queries, targets and per-element weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class Observations:
    """A batch of K observed instances.

    - ``queries``: ``(K, N, d_in)`` decoder queries (an image decoder may ignore them).
    - ``targets``: the values to match, shaped like the decoder's output minus trailing singleton
      channels, e.g. ``(K, N)`` for SDFs or ``(K, C, H, W)`` for images.
    - ``weights``: per-element weights, same shape as ``targets`` (0 = unobserved). ``None`` = all 1.
    - ``lower_bound``: optional bool mask, same shape as ``targets``: where True the target is only a
      lower bound on the prediction (a one-sided, hinge constraint such as free space), not a value.
    """

    queries: torch.Tensor
    targets: torch.Tensor
    weights: torch.Tensor | None = None
    lower_bound: torch.Tensor | None = None

    def __post_init__(self):
        k = self.targets.shape[0]
        if self.queries.shape[0] != k:
            raise ValueError(f"queries describe {self.queries.shape[0]} instances, targets {k}")
        for name in ("weights", "lower_bound"):
            t = getattr(self, name)
            if t is not None and t.shape != self.targets.shape:
                raise ValueError(f"{name} has shape {tuple(t.shape)}, targets {tuple(self.targets.shape)}")

    @property
    def num_instances(self) -> int:
        return self.targets.shape[0]

    def to(self, device) -> "Observations":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Observations(move(self.queries), move(self.targets), move(self.weights), move(self.lower_bound))

    def subsample(self, count: int, generator: torch.Generator) -> "Observations":
        """The same ``count`` random elements of every instance (``queries`` and ``targets`` shaped
        ``(K, N, ...)``, ``(K, N)``; e.g. a probe for :func:`core.fitting.nearest_codes`)."""
        cols = torch.randperm(self.targets.shape[1], generator=generator)[: max(1, count)].to(self.targets.device)
        pick = lambda t: None if t is None else t[:, cols]  # noqa: E731
        return Observations(pick(self.queries), pick(self.targets), pick(self.weights), pick(self.lower_bound))

    def select(self, index: torch.Tensor | slice) -> "Observations":
        """The sub-batch of instances ``index``."""
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return Observations(pick(self.queries), pick(self.targets), pick(self.weights), pick(self.lower_bound))


ElementLoss = Callable[[torch.Tensor, Observations], torch.Tensor]
"""``loss(predictions, observations) -> per-element loss`` shaped like ``observations.targets``."""


def instance_data_loss(per_element: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Weighted mean of a per-element loss over each instance. ``(K, ...)`` → ``(K,)``.

    An instance whose weights are all 0 gets a loss of 0 (nothing observed, nothing to fit).
    """
    flat = per_element.reshape(per_element.shape[0], -1)
    if weights is None:
        return flat.mean(dim=1)
    w = weights.reshape(flat.shape).to(flat.dtype)
    return (flat * w).sum(dim=1) / w.sum(dim=1).clamp(min=1e-12)
