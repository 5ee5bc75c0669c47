"""The domain-free parts of a training loop: seeded epoch batches, the one learning-rate schedule,
the code-prior ramp, wall-clock budgets, and the epoch runner both domains call.

A domain's loop (``shapes.train``, ``images.train``) is, per epoch::

    seed_global(seed, <dropout key>, epoch)              # core.seeding
    generator = torch_generator(seed, <batch key>, epoch)
    batches = epoch_batches(n, batch_size, generator)    # a seeded random order, cut into batches
    stats = run_epoch(batches, step, fetch=..., before_step=...)
    row = {"epoch": epoch + 1, **stats.means, ...}       # one row of the run's history

``step`` does the domain's update (usually :func:`~sdf_autodec.core.engine.training_step`) and
returns its statistics; ``fetch`` draws a batch's data, optionally one batch ahead in a background
thread (``prefetch``); ``before_step`` sets the learning rates (:func:`set_learning_rates`, with
:func:`lr_factor`) and may end the epoch early (a spent budget).
"""

from __future__ import annotations

import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch

__all__ = [
    "EpochStats", "epoch_batches", "in_order", "linear_ramp", "lr_factor", "parse_budget", "run_epoch",
    "schedule_epoch", "set_learning_rates",
]  # fmt: skip


def epoch_batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch's visiting order: the instances ``0..count-1`` in a random order drawn from
    ``generator``, cut into ``(batch_size,)`` index tensors (the last one may be shorter)."""
    return list(torch.randperm(count, generator=generator).split(batch_size))


def lr_factor(epoch: float, halve_every: int) -> float:
    """The learning-rate factor of 0-based ``epoch``: the one schedule of both domains.

    DeepSDF's step schedule ``0.5 ** (e // halve_every)`` of its 1-based epoch ``e = epoch + 1``: the
    rates are halved from the ``halve_every``-th epoch on (with 500: epochs 1-499 at the full rate, the
    500th at half), again from the ``2 * halve_every``-th, and so on; ``halve_every <= 0``: never.
    ``epoch`` may be fractional (a budget run's :func:`schedule_epoch`).
    """
    return 0.5 ** ((epoch + 1) // halve_every) if halve_every > 0 else 1.0


def linear_ramp(epoch: float, ramp_epochs: int) -> float:
    """``min(1, e / ramp_epochs)`` of the 1-based epoch ``e = epoch + 1`` (DeepSDF's code-prior ramp);
    1 when ``ramp_epochs <= 0``."""
    return min(1.0, (epoch + 1) / ramp_epochs) if ramp_epochs > 0 else 1.0


def set_learning_rates(optimizer: torch.optim.Optimizer, base: Sequence[float], factor: float) -> None:
    """Parameter group ``g`` of ``optimizer`` runs at ``base[g] * factor``."""
    for group, lr in zip(optimizer.param_groups, base, strict=True):
        group["lr"] = lr * factor


_BUDGET = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|h|)\s*$")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: str | float | int) -> float:
    """Seconds of a budget such as ``90s``, ``30m``, ``2h``, ``1.5h`` or ``600``; raises ValueError
    (one line) for anything else, zero included."""
    match = _BUDGET.match(str(text))
    if match is None:
        raise ValueError(f"budget={text!r}: give a duration such as 90s, 30m or 2h")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"budget={text!r}: a training budget must be longer than zero")
    return seconds


def schedule_epoch(elapsed: float, budget_seconds: float, epochs: int) -> float:
    """The (fractional, 0-based) epoch of an ``epochs``-long schedule that a budget run is at after
    ``elapsed`` of its ``budget_seconds``: ``epochs * elapsed / budget - 1`` (``epochs - 1`` at most),
    so that every schedule laid over the epochs is laid over the budget instead."""
    return epochs * min(1.0, max(0.0, elapsed / budget_seconds)) - 1.0


def in_order(fetch: Callable[[Any], Any], items: Iterable[Any], ahead: bool) -> Iterator[tuple[Any, Any]]:
    """``(item, fetch(item))`` for each item in order; with ``ahead``, the next fetch runs in a
    background thread while the caller works on the current one (one thread: the fetches stay in
    order, so a seeded generator they share draws the same numbers either way)."""
    if not ahead:
        for item in items:
            yield item, fetch(item)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sampler") as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(fetch, item)))
            if len(pending) > 1:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()


@dataclass
class EpochStats:
    """What :func:`run_epoch` measured."""

    means: dict[str, float]
    """Each statistic the steps returned, averaged over the instances they trained (a step's value
    weighs as many times as its batch has instances): the epoch's mean loss, whatever the batch sizes."""
    steps: int
    """Steps taken (fewer than the batches when ``before_step`` ended the epoch)."""
    instances: int
    """Instances in the steps taken."""
    stopped: bool
    """``before_step`` ended the epoch before its last batch."""


def run_epoch(
    batches: Sequence[torch.Tensor],
    step: Callable[[int, torch.Tensor, Any], Mapping[str, float]],
    *,
    fetch: Callable[[torch.Tensor], Any] | None = None,
    prefetch: bool = False,
    before_step: Callable[[int], bool] | None = None,
) -> EpochStats:
    """One pass over ``batches`` (``(b,)`` instance indices each, e.g. :func:`epoch_batches`).

    For batch ``i``: its data ``fetch(batch)`` (``None`` without ``fetch``; with ``prefetch``, drawn
    one batch ahead in a background thread, in the same order), then ``before_step(i)`` (return
    False to end the epoch there, before the step), then ``step(i, batch, data)``, which updates the
    model and returns its statistics (floats by name, e.g. ``{"loss": ..., "data": ...}``).
    Exceptions of ``step`` propagate unchanged.
    """
    sums: dict[str, float] = {}
    steps = instances = 0
    stopped = False
    for i, (batch, data) in enumerate(in_order(fetch or (lambda _: None), batches, ahead=prefetch and fetch is not None)):
        if before_step is not None and not before_step(i):
            stopped = True
            break
        stats = step(i, batch, data)
        size = len(batch)
        for key, value in stats.items():
            sums[key] = sums.get(key, 0.0) + value * size
        steps, instances = steps + 1, instances + size
    means = {key: total / instances for key, total in sums.items()} if instances else {}
    return EpochStats(means=means, steps=steps, instances=instances, stopped=stopped)
