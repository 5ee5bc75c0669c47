"""Several seeds of the study, one table: every figure as its mean, standard deviation and runs.

:func:`aggregate` merges the ``results.json`` of runs that differ only by their seed: a float (or an
int that differs between runs) becomes ``{"mean", "std", "runs"}`` (``std``: the sample standard
deviation, ``ddof=1``; 0 for one run; missing or non-finite runs are left out of both and kept as
``None`` in ``runs``); dicts and equal-length lists are merged entry by entry; anything else (strings,
booleans, ints equal in every run) is kept when all runs agree and listed per run otherwise.

:func:`stats_view` turns such a merged tree back into plain numbers for the report code, each a
:class:`Stat`: a float equal to the mean that formats as ``mean ± std``, so every table of
``images.report`` shows the spread without knowing about seeds.
"""

from __future__ import annotations

import math
import statistics


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _stat(values: list) -> dict:
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    mean = statistics.fmean(finite) if finite else None
    std = (statistics.stdev(finite) if len(finite) > 1 else 0.0) if finite else None
    return {"mean": mean, "std": std, "runs": list(values)}


def aggregate(runs: list):
    """The merged tree of ``runs`` (see the module docstring)."""
    first = runs[0]
    if all(v is None or _is_number(v) for v in runs) and any(_is_number(v) for v in runs):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in runs) and len(set(runs)) == 1:
            return first
        return _stat(runs)
    if all(isinstance(r, dict) for r in runs):
        return {k: aggregate([r[k] for r in runs]) for k in first if all(k in r for r in runs)}
    if all(isinstance(r, list) for r in runs) and len({len(r) for r in runs}) == 1:
        return [aggregate([r[i] for r in runs]) for i in range(len(first))]
    return first if all(r == first for r in runs) else list(runs)


class Stat(float):
    """A mean that remembers its standard deviation; ``format(s, ".4f")`` gives ``"0.1234 ± 0.0012"``."""

    def __new__(cls, mean: float, std: float):
        self = super().__new__(cls, mean)
        self.std = std
        return self

    def __format__(self, spec: str) -> str:
        if not spec:
            return float.__repr__(self)
        return f"{float.__format__(self, spec)} ± {format(self.std, spec)}"


def _is_stat(node) -> bool:
    return isinstance(node, dict) and set(node) == {"mean", "std", "runs"}


def stats_view(tree):
    """``tree`` with every ``{"mean", "std", "runs"}`` replaced by a :class:`Stat` (``None`` where no run was finite)."""
    if _is_stat(tree):
        return None if tree["mean"] is None else Stat(tree["mean"], tree["std"])
    if isinstance(tree, dict):
        return {k: stats_view(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [stats_view(v) for v in tree]
    return tree
