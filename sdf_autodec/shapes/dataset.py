"""Training SDF samples from the packed store; per-scene sampling is vectorised.

Every scene's ``pos`` and ``neg`` rows live back to back in two memory-mapped arrays with per-scene
offsets and counts (``geometry.packed``). A batch draws, for each of its scenes, half its samples
from ``pos`` and half from ``neg`` (with replacement, as DeepSDF) by index arithmetic: no npz reads
and no per-sample Python per step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sdf_autodec.geometry.layout import SDF_DIR, DatasetError, DatasetLayout, ShapeKey, read_split
from sdf_autodec.geometry.packed import open_packed


def resolve_split(data_dir: str | Path, split: str = "") -> list[ShapeKey]:
    """The shapes to train on: ``split`` (a json path, or a name under ``DATA/splits/``), else
    ``DATA/splits/train.json`` if present, else every shape with SDF samples."""
    layout = DatasetLayout(data_dir)
    if not layout.root.is_dir():
        raise DatasetError(f"{layout.root}: data directory not found (create it with `sdf-autodec prep`)")
    if split:
        path = Path(split) if Path(split).suffix == ".json" else layout.split(split)
        keys = read_split(path)
    elif layout.split("train").is_file():
        path, keys = layout.split("train"), read_split(layout.split("train"))
    else:
        path, keys = layout.root / SDF_DIR, layout.sdf_keys()
    if not keys:
        raise DatasetError(f"{path}: no shapes (is {layout.root} a prepared data directory?)")
    missing = [k for k in keys if not layout.sdf(k).is_file()]
    if missing:
        names = ", ".join(str(k.rel) for k in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DatasetError(f"{path}: {len(missing)} shape(s) named in the split have no SDF samples under {layout.root / SDF_DIR}: {names}")
    return keys


class PackedSdfSamples:
    """The training scenes ``keys``, sampled from the data directory's packed store.

    ``sample(scenes: (B,), n) -> (xyz: (B, n, 3), sdf: (B, n))`` with ``scenes`` indexing ``keys``.
    The store (``geometry.packed``) is memory-mapped and rebuilt when an npz changed.
    """

    def __init__(self, data_dir: str | Path, keys: list[ShapeKey]):
        self.keys = list(keys)
        store = open_packed(data_dir)
        rows = store.index_of(self.keys)
        self.pos, self.neg = store.pos, store.neg
        self.pos_offset, self.pos_count = torch.from_numpy(store.pos_offset[rows]), torch.from_numpy(store.pos_count[rows])
        self.neg_offset, self.neg_count = torch.from_numpy(store.neg_offset[rows]), torch.from_numpy(store.neg_count[rows])

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def ids(self) -> list[str]:
        return [k.id for k in self.keys]

    def sample(self, scenes: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples per scene (``n // 2`` from ``pos``, the rest from ``neg``), drawn with ``generator``."""
        n_pos = n // 2
        rows = torch.cat(
            [
                self._draw(self.pos, self.pos_offset, self.pos_count, scenes, n_pos, generator),
                self._draw(self.neg, self.neg_offset, self.neg_count, scenes, n - n_pos, generator),
            ],
            dim=1,
        )  # (B, n, 4)
        return rows[..., :3], rows[..., 3]

    @staticmethod
    def _draw(rows: np.ndarray, offsets, counts, scenes, n, generator) -> torch.Tensor:
        u = torch.rand(len(scenes), n, generator=generator)
        index = offsets[scenes, None] + (u * counts[scenes, None]).long().clamp(max=counts[scenes, None] - 1)
        return torch.from_numpy(rows[index.numpy()])  # (B, n, 4); gathers only the pages it needs
