"""The project's fast training format: every shape's SDF samples packed into two memory-mapped arrays.

``DATA_DIR/Packed/{pos.npy, neg.npy, index.json}`` is derived from the DeepSDF npz files (which
stay the source of truth): ``pos``/``neg`` are ``(P_total, 4)`` / ``(Q_total, 4)`` float32 rows of all
shapes back to back, ``index.json`` lists the shapes with their row offsets and counts, and the size
and modification time of each source file. :func:`open_packed` rebuilds the store when a source
changed, appeared or disappeared, and otherwise maps it without reading it: training touches only
the pages of the rows it samples, so a dataset larger than memory still trains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdf_autodec.atomic import atomic_write, atomic_write_bytes
from sdf_autodec.storage.layout import DatasetError, DatasetLayout, ShapeKey, read_sdf_samples

PACKED_DIR = "Packed"
VERSION = 1


@dataclass
class PackedStore:
    """A mapped store. Row ``i`` of shape ``s`` in ``pos`` is ``pos[pos_offset[s] + i]``."""

    keys: list[ShapeKey]
    pos: np.ndarray  # (P_total, 4) float32, memory-mapped
    neg: np.ndarray  # (Q_total, 4) float32, memory-mapped
    pos_offset: np.ndarray  # (S,) int64
    pos_count: np.ndarray  # (S,) int64
    neg_offset: np.ndarray
    neg_count: np.ndarray

    def index_of(self, keys: list[ShapeKey]) -> np.ndarray:
        """Store rows of ``keys``, ``(len(keys),)`` int64."""
        where = {k: i for i, k in enumerate(self.keys)}
        missing = [k for k in keys if k not in where]
        if missing:
            raise DatasetError(f"packed store lacks {', '.join(str(k.rel) for k in missing[:5])}")
        return np.array([where[k] for k in keys], dtype=np.int64)


def _signature(layout: DatasetLayout, keys: list[ShapeKey]) -> list[list[int]]:
    stats = [layout.sdf(k).stat() for k in keys]
    return [[s.st_size, s.st_mtime_ns] for s in stats]


def build_packed(data_dir: str | Path) -> PackedStore:
    """(Re)build the store from every ``SdfSamples`` npz of ``data_dir``; the index is written last."""
    layout = DatasetLayout(data_dir)
    keys = layout.sdf_keys()
    if not keys:
        raise DatasetError(f"{layout.root}: no SDF samples to pack")
    signature = _signature(layout, keys)
    pos, neg = zip(*(read_sdf_samples(layout.sdf(k)) for k in keys))
    out = layout.root / PACKED_DIR
    atomic_write_bytes(out / "pos.npy", lambda f: np.save(f, np.concatenate(pos)))
    atomic_write_bytes(out / "neg.npy", lambda f: np.save(f, np.concatenate(neg)))
    index = {
        "version": VERSION,
        "keys": [[k.dataset, k.cls, k.id] for k in keys],
        "sources": signature,
        "pos_count": [len(a) for a in pos],
        "neg_count": [len(a) for a in neg],
    }
    atomic_write(out / "index.json", lambda tmp: Path(tmp).write_text(json.dumps(index)))
    return _map(out, index)


def _map(out: Path, index: dict) -> PackedStore:
    pos_count, neg_count = np.array(index["pos_count"], dtype=np.int64), np.array(index["neg_count"], dtype=np.int64)
    return PackedStore(
        keys=[ShapeKey(*k) for k in index["keys"]],
        pos=np.load(out / "pos.npy", mmap_mode="r"),
        neg=np.load(out / "neg.npy", mmap_mode="r"),
        pos_offset=np.cumsum(pos_count) - pos_count,
        pos_count=pos_count,
        neg_offset=np.cumsum(neg_count) - neg_count,
        neg_count=neg_count,
    )


def open_packed(data_dir: str | Path) -> PackedStore:
    """Map the store of ``data_dir``, rebuilding it first when it is missing or stale."""
    layout = DatasetLayout(data_dir)
    out = layout.root / PACKED_DIR
    try:
        index = json.loads((out / "index.json").read_text())
        keys = layout.sdf_keys()
        fresh = (
            index.get("version") == VERSION
            and [ShapeKey(*k) for k in index["keys"]] == keys
            and index["sources"] == _signature(layout, keys)
        )
        if fresh:
            return _map(out, index)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing or unreadable index: rebuild
    return build_packed(data_dir)
