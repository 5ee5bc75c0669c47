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

from sdf_autodec.storage.layout import SDF_DIR, DatasetError, DatasetLayout, ShapeKey
from sdf_autodec.storage.packed import open_packed


def resolve_split(data_dir: str | Path, split: str = "") -> list[ShapeKey]:
    """The shapes to train on: ``split`` (a json path, or a name under ``DATA/splits/``), else
    ``DATA/splits/train.json`` if present, else every shape with SDF samples."""
    layout = DatasetLayout(data_dir)
    if not layout.root.is_dir():
        raise DatasetError(f"{layout.root}: data directory not found (create it with `sdf-autodec prep`)")
    if split:
        path, keys = layout.split_keys(split)
    elif layout.split("train").is_file():
        path, keys = layout.split_keys("train")
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

    def sample(self, scenes: torch.Tensor, n: int, generator: torch.Generator, select: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` samples per scene (``n // 2`` from ``pos``, the rest from ``neg``), drawn with ``generator``:
        ``xyz: (B, n, 3)``, ``sdf: (B, n)``, views of :meth:`sample_rows`."""
        rows = self.sample_rows(scenes, n, generator, select)
        return rows[..., :3], rows[..., 3]

    def sample_rows(
        self,
        scenes: torch.Tensor,
        n: int,
        generator: torch.Generator,
        select: torch.Tensor | None = None,
        pin_memory: bool = False,
    ) -> torch.Tensor:
        """``scenes: (B,)`` → one contiguous ``(B, n, 4)`` block of rows ``x, y, z, sdf``: ``n // 2``
        per scene from ``pos``, the rest from ``neg``, drawn with ``generator``.

        The random numbers are drawn for the whole batch; ``select`` (positions in ``scenes``) keeps
        only those scenes' rows, exactly the ones the whole batch would have had: a process of a
        distributed run samples its shard of a global batch that way.
        ``pin_memory``: the block is page-locked, for an asynchronous copy to a GPU.
        """
        n_pos = n // 2
        u_pos = torch.rand(len(scenes), n_pos, generator=generator)
        u_neg = torch.rand(len(scenes), n - n_pos, generator=generator)
        if select is not None:
            scenes, u_pos, u_neg = scenes[select], u_pos[select], u_neg[select]
        out = torch.empty(len(scenes), n, 4, pin_memory=pin_memory)  # (B, n, 4)
        block = out.numpy()
        self._draw(self.pos, self.pos_offset, self.pos_count, scenes, u_pos, block[:, :n_pos])
        self._draw(self.neg, self.neg_offset, self.neg_count, scenes, u_neg, block[:, n_pos:])
        return out

    @staticmethod
    def _draw(rows: np.ndarray, offsets: torch.Tensor, counts: torch.Tensor, scenes: torch.Tensor, u: torch.Tensor, out: np.ndarray) -> None:
        """Rows ``offset + floor(u * count)`` of each scene's range (with replacement, as DeepSDF) into ``out: (B, n, 4)``."""
        count = counts[scenes, None]
        index = offsets[scenes, None] + (u * count).long().clamp_(max=count - 1)  # (B, n)
        np.take(rows, index.numpy(), axis=0, out=out, mode="clip")  # gathers only the pages it needs; indices are in range
