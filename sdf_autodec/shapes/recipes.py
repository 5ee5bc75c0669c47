"""Which training recipe a time budget gets when the user names none.

``sdf-autodec train budget=30m`` without ``model=`` trains with the recipe measured for a budget on
that kind of device (``BUDGET_RECIPES``; the table that chose it is in
``benchmarks/RESULTS.md``, made by ``benchmarks/represent.py``). A recipe is a preset of
``conf/model/`` (the decoder and its schedule, batch and learning rates); keys the user gave on the
command line are kept over it. ``model=deepsdf`` or any other preset still works with a budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import torch
from omegaconf import OmegaConf

from sdf_autodec.shapes.train import TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    """A preset of ``conf/model/``."""
    reason: str
    """Why it was chosen (what measured it)."""

    def as_dict(self) -> dict:
        return {"name": self.name, "reason": self.reason}


BUDGET_RECIPES: dict[str, Recipe] = {
    "cpu": Recipe(
        "budget_cpu",
        "a 6 x 256 decoder at 32 x 1024 samples per step, the schedule laid over the budget: the recipe that measured best at a "
        "30-minute CPU budget on held-out PSB shapes (conf/model/budget_cpu.yaml; benchmarks/RESULTS.md, 'benchmarks/represent.py')",
    ),
    "cuda": Recipe("deepsdf", "no recipe was measured on a GPU yet: DeepSDF's own"),
}


def budget_recipe(device: torch.device | str) -> Recipe:
    """The recipe for a budget run on ``device`` (its type: ``cpu`` or ``cuda``)."""
    kind = torch.device(device).type
    return BUDGET_RECIPES.get(kind, BUDGET_RECIPES["cpu"])


def preset_values(name: str) -> dict:
    """The keys a ``conf/model/<name>.yaml`` preset sets (its ``@package _global_`` content), over
    those of the presets its defaults list extends (``- deepsdf``, then ``_self_``), as Hydra composes them."""
    path = resources.files("sdf_autodec.conf") / "model" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"no training preset named {name!r} (conf/model/{name}.yaml)")
    own = OmegaConf.create(path.read_text())
    bases = [OmegaConf.create(preset_values(str(d))) for d in own.pop("defaults", []) if str(d) != "_self_"]
    return OmegaConf.to_container(OmegaConf.merge(*bases, own))


def _flatten(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def apply_preset(cfg: TrainConfig, name: str, keep: set[str] = frozenset()) -> TrainConfig:
    """``cfg`` with preset ``name``'s values, except the keys in ``keep`` (dotted, e.g. ``model.width``,
    or a whole group such as ``model``): what the user set stays as set."""
    values = _flatten(preset_values(name))
    kept = {k for k in values if any(k == g or k.startswith(g + ".") for g in keep)}
    merged = OmegaConf.structured(cfg)
    for key, value in values.items():
        if key not in kept:
            OmegaConf.update(merged, key, value, merge=False)
    return OmegaConf.to_object(merged)
