"""Which training recipe a time budget gets when the user names none.

``sdf-autodec train budget=30m`` without ``recipe=`` trains with the recipe measured for a budget on
that kind of device (``BUDGET_RECIPES``; the table that chose it is in
``benchmarks/RESULTS.md``, made by ``benchmarks/represent.py``). A recipe is a file of
``conf/recipe/``: a decoder of ``conf/model/`` (architectures only) with its schedule, batch and
learning rates; keys the user gave on the command line (``model=`` included) are kept over it.
``recipe=deepsdf`` or any other recipe still works with a budget.
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
    """A recipe of ``conf/recipe/``."""
    reason: str
    """Why it was chosen (what measured it)."""

    def as_dict(self) -> dict:
        return {"name": self.name, "reason": self.reason}


BUDGET_RECIPES: dict[str, Recipe] = {
    "cpu": Recipe(
        "budget_cpu",
        "a 6 x 256 decoder at 32 x 1024 samples per step, the schedule laid over the budget: the recipe that measured best at a "
        "30-minute CPU budget on held-out PSB shapes (conf/recipe/budget_cpu.yaml; benchmarks/RESULTS.md, 'benchmarks/represent.py')",
    ),
    "cuda": Recipe("deepsdf", "no recipe was measured on a GPU yet: DeepSDF's own"),
}


def budget_recipe(device: torch.device | str) -> Recipe:
    """The recipe for a budget run on ``device`` (its type: ``cpu`` or ``cuda``)."""
    kind = torch.device(device).type
    return BUDGET_RECIPES.get(kind, BUDGET_RECIPES["cpu"])


def _conf_file(group: str, name: str) -> dict:
    path = resources.files("sdf_autodec.conf") / group / f"{name}.yaml"
    if not path.is_file():
        what = "training recipe" if group == "recipe" else "decoder architecture"
        raise ValueError(f"no {what} named {name!r} (conf/{group}/{name}.yaml)")
    return OmegaConf.to_container(OmegaConf.create(path.read_text()))


def _model_values(name: str) -> dict:
    """The keys of architecture ``conf/model/<name>.yaml``, over those of the architectures it extends."""
    own = _conf_file("model", name)
    bases = [_model_values(str(d)) for d in own.pop("defaults", []) if str(d) != "_self_"]
    return OmegaConf.to_container(OmegaConf.merge(*bases, own))


def _recipe_items(name: str) -> tuple[list, str | None]:
    """Recipe ``name``'s defaults tree flattened in Hydra's merge order: ``("values", dict)`` for a
    recipe's own keys, ``("model", choice)`` where the decoder is included; and the last
    ``override /model`` met, if any."""
    own = _conf_file("recipe", name)
    defaults = own.pop("defaults", [])
    items, override = [], None
    for entry in defaults:
        if entry == "_self_":
            items.append(("values", own))
        elif isinstance(entry, str):
            nested, nested_override = _recipe_items(entry)
            items += nested
            override = nested_override or override
        elif isinstance(entry, dict) and len(entry) == 1:
            (key, value), = entry.items()
            if key.strip() == "/model":
                items.append(("model", str(value)))
            elif key.strip() == "override /model":
                override = str(value)
            else:
                raise ValueError(f"conf/recipe/{name}.yaml: defaults entry {entry!r} is not a recipe, /model or override /model")
        else:
            raise ValueError(f"conf/recipe/{name}.yaml: defaults entry {entry!r} is not a recipe, /model or override /model")
    if "_self_" not in defaults:
        items.append(("values", own))
    return items, override


def preset_values(name: str) -> dict:
    """The keys recipe ``conf/recipe/<name>.yaml`` sets, as Hydra composes it: the recipes it extends
    (``- deepsdf``), its decoder (``- /model: small`` or ``- override /model: tcnn``, from
    ``conf/model/``) and its own keys, in its defaults list's order."""
    items, override = _recipe_items(name)
    choices = [v for kind, v in items if kind == "model"]
    if not choices:
        raise ValueError(f"conf/recipe/{name}.yaml: no decoder (a `- /model: NAME` entry in its defaults list)")
    model = {"model": _model_values(override or choices[-1])}
    parts = [model if kind == "model" else v for kind, v in items]
    return OmegaConf.to_container(OmegaConf.merge(*parts))


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
