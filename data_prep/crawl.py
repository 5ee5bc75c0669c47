"""Finding the meshes of a dataset folder, whatever its layout, and naming each shape.

Recognised layouts (mixed freely):

- flat: ``DIR/<id>.obj`` — class = ``DIR``'s name;
- class folders: ``DIR/<class>/**/<id>.off`` — class = first sub-folder (ModelNet's
  ``<class>/<split>/<class>_NNNN.off`` included);
- ShapeNetCore v1 ``DIR/<synset>/<id>/model.obj`` and v2 ``DIR/<synset>/<id>/models/model_normalized.obj``
  — the shape id is ``<id>``, the class ``<synset>`` (or ``DIR``'s name when ``DIR`` is one synset).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sdf_autodec.storage.layout import MESH_SUFFIXES
from sdf_autodec.storage.layout import ShapeKey

SHAPENET_STEMS = ("model", "model_normalized")


@dataclass(frozen=True)
class MeshSource:
    """One input mesh and the name it gets in the layout."""

    cls: str
    id: str
    path: Path

    @property
    def name(self) -> str:
        return f"{self.cls}/{self.id}"


def crawl_meshes(input_dir: str | Path, split: list[ShapeKey] | None = None) -> list[MeshSource]:
    """Every mesh under ``input_dir`` (sorted by path), restricted to ``split`` (class, id) when given."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"{input_dir}: input folder not found")
    top = input_dir.resolve().name
    found = []
    for path in sorted(input_dir.rglob("*")):
        if not (path.is_file() and path.suffix.lower() in MESH_SUFFIXES):
            continue
        parts = path.relative_to(input_dir).parts[:-1]
        if path.stem in SHAPENET_STEMS and parts:
            if parts[-1] == "models":
                parts = parts[:-1]
            shape_id, cls = (parts[-1], parts[-2] if len(parts) >= 2 else top) if parts else (path.stem, top)
        else:
            shape_id, cls = path.stem, (parts[0] if parts else top)
        found.append(MeshSource(cls, shape_id, path))
    if split is not None:
        wanted = {(k.cls, k.id) for k in split}
        found = [m for m in found if (m.cls, m.id) in wanted]
    return found


def parse_shard(shard: str) -> tuple[int, int]:
    """``"i/n"`` → ``(i, n)`` with ``0 <= i < n``; ``""`` → ``(0, 1)``."""
    if not shard:
        return 0, 1
    try:
        i, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"shard must look like i/n (e.g. 0/4), got {shard!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"shard {shard!r}: need 0 <= i < n")
    return i, n
