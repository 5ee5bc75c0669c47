"""Small on-disk fixtures shared by the tests and the benchmarks (imported as ``tests.factories``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import trimesh

EMPTY_PLY = "ply\nformat ascii 1.0\nelement vertex 0\nend_header\n"


def completed_folder(root: Path, n: int, empty: tuple[str, ...] = (), classes: int = 2, subdivisions: int = 2) -> tuple[Path, Path]:
    """A fake output of ``complete`` for the report: ``n`` sphere meshes ``s000.ply``... of growing
    radius (the ``empty`` names as meshes with no triangles) in ``root/completed``, and a metrics JSON
    in ``eval``'s shape with seeded made-up scores, ``classes`` classes and a retrieval row. Returns
    ``(folder, metrics path)``."""
    folder = root / "completed"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    shapes = {}
    for i in range(n):
        name = f"s{i:03d}"
        if name in empty:
            (folder / f"{name}.ply").write_text(EMPTY_PLY)
        else:
            trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.3 + 0.6 * i / max(n, 1)).export(folder / f"{name}.ply")
        shapes[name] = {"shape": name, "class": "abcdefghij"[i % classes], "chamfer_x1000": float(rng.uniform(1, 10)), "fscore@1%": float(rng.uniform())}
    metrics = root / "metrics.json"
    metrics.write_text(json.dumps({"shapes": shapes, "methods": {"retrieval": {"shapes": {k: {"chamfer_x1000": 5.0} for k in shapes}}}}))
    return folder, metrics
