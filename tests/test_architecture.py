"""The layering rules ARCHITECTURE.md states, checked on the source: who may import whom, and no cycles.

Every import counts, module-level or inside a function (a function-level import still makes a
dependency; it only hides it).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# layer → the layers it may import (besides itself). "floor" is sdf_autodec/*.py.
ALLOWED = {
    "floor": set(),
    "geometry": {"floor"},
    "storage": {"floor", "geometry"},
    "nn": {"floor"},
    "core": {"floor", "nn"},
    "shapes": {"floor", "geometry", "storage", "nn", "core"},
    "images": {"floor", "geometry", "storage", "nn", "core"},
    "cli": {"floor", "geometry", "storage", "nn", "core", "shapes", "images", "data_prep"},
    "data_prep": {"floor", "geometry", "storage"},
}


def _modules() -> dict[str, set[str]]:
    found = {}
    for top in ("sdf_autodec", "data_prep"):
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            deps = set()
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    deps.add(node.module)
                    deps.update(f"{node.module}.{a.name}" for a in node.names)
                elif isinstance(node, ast.Import):
                    deps.update(a.name for a in node.names)
            found[name] = deps
    return {m: {d for d in deps if d.split(".")[0] in ("sdf_autodec", "data_prep")} for m, deps in found.items()}


MODULES = _modules()


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "data_prep":
        return "data_prep"
    if len(parts) == 1 or f"sdf_autodec.{parts[1]}" not in MODULES or parts[1] == "conf":
        return "floor"
    return "floor" if (REPO / "sdf_autodec" / f"{parts[1]}.py").is_file() else parts[1]


def _resolve(dep: str) -> str | None:
    """The module an import names (``from a.b import c`` may name module ``a.b.c`` or object ``c`` of ``a.b``)."""
    while dep and dep not in MODULES:
        dep = dep.rpartition(".")[0]
    return dep or None


def test_imports_point_down_the_layers():
    wrong = []
    for module, deps in MODULES.items():
        mine = layer(module)
        for dep in deps:
            target = _resolve(dep)
            if target is None or target == module:
                continue
            theirs = layer(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{module} ({mine}) imports {target} ({theirs})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = {m: {t for d in deps if (t := _resolve(d)) and t != m and not m.startswith(t + ".")} for m, deps in MODULES.items()}
    seen, on_path, cycles = set(), [], []

    def visit(node):
        if node in on_path:
            cycles.append(on_path[on_path.index(node) :] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        on_path.append(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        on_path.pop()

    for m in sorted(graph):
        visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_sees_layers_and_function_level_imports():
    assert layer("sdf_autodec.core.fitting") == "core" and layer("sdf_autodec.atomic") == "floor" and layer("data_prep.prep") == "data_prep"
    assert "data_prep.repair" in {_resolve(d) for d in MODULES["data_prep.sampling"]}
    assert any(_resolve(d) == "sdf_autodec.shapes.train" for d in MODULES["sdf_autodec.shapes.pictures"])  # inside render_slices


def test_architecture_document_names_every_package():
    text = (REPO / "ARCHITECTURE.md").read_text()
    packages = {m for m in MODULES if m.startswith("sdf_autodec.") and (REPO / m.replace(".", "/")).is_dir()}
    for package in sorted(packages | {"data_prep"}):
        assert f"`{package.replace('.', '/')}/`" in text, package
