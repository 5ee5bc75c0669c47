"""A training run's folder: where checkpoints go, which are kept, and the per-epoch metrics.

::

    RUN_DIR/checkpoints/latest.pt        the last checkpoint (always kept)
    RUN_DIR/checkpoints/epoch_<E>.pt     periodic snapshots: the last ``keep_last`` are kept
    RUN_DIR/checkpoints/last_good.pt     only after a NaN/inf loss: the state just before that step
    RUN_DIR/metrics.jsonl                one JSON object per epoch (``"epoch"``: 1-based), appended
    RUN_DIR/<name>.json                  the run's configuration (``write_json``)

Every file is written whole or not at all (``atomic``); a checkpoint half-written by a killed run is
a hidden temporary file that :meth:`RunDir.prepare` removes. A resumed run keeps the metrics rows of
the epochs its checkpoint holds and drops the rest (:meth:`RunDir.metrics_until`), so the file never
has a row twice. The checkpoint payload is the domain's (see :mod:`sdf_autodec.core.checkpoint`).
"""

from __future__ import annotations

import json
from pathlib import Path

from sdf_autodec.atomic import atomic_write
from sdf_autodec.core.checkpoint import save_checkpoint

__all__ = ["RunDir", "read_metrics"]


class RunDir:
    """The files of one run under ``path``; only the process that writes files (rank 0) calls the writers."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.pt"

    @property
    def last_good(self) -> Path:
        return self.checkpoints / "last_good.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    def prepare(self) -> None:
        """Create the folder and remove checkpoints half-written by a killed run."""
        self.path.mkdir(parents=True, exist_ok=True)
        for partial in self.checkpoints.glob(".*.tmp.pt"):
            partial.unlink(missing_ok=True)

    def write_json(self, name: str, record: dict) -> Path:
        """``RUN_DIR/<name>`` holding ``record`` (indented JSON), written atomically."""
        path = self.path / name
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
        return path

    def save(self, payload: dict, epoch: int, keep_last: int) -> None:
        """``latest.pt`` and, when ``keep_last > 0``, the snapshot ``epoch_<epoch>.pt``, deleting all
        but the newest ``keep_last`` snapshots."""
        save_checkpoint(self.latest, payload)
        if keep_last > 0:
            save_checkpoint(self.checkpoints / f"epoch_{epoch:06d}.pt", payload)
            for old in sorted(self.checkpoints.glob("epoch_*.pt"))[:-keep_last]:
                old.unlink()

    def save_last_good(self, payload: dict) -> Path:
        """``last_good.pt``: the state before a failed step (it does not replace ``latest.pt``)."""
        save_checkpoint(self.last_good, payload)
        return self.last_good

    def metrics_until(self, epoch: int) -> list[dict]:
        """Rewrite ``metrics.jsonl`` with only its rows up to ``epoch`` (a resumed run's start) and return them."""
        rows = read_metrics(self.metrics, before_epoch=epoch)
        atomic_write(self.metrics, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in rows)))
        return rows

    def append_metrics(self, row: dict) -> None:
        """One more line of ``metrics.jsonl`` (a kill mid-line leaves a line that :func:`read_metrics` skips)."""
        with self.metrics.open("a") as f:
            f.write(json.dumps(row) + "\n")


def read_metrics(path: str | Path, before_epoch: int | None = None) -> list[dict]:
    """The rows of a run's ``metrics.jsonl`` (of epochs up to ``before_epoch`` when given); a line cut
    short by a kill is skipped, a missing file is no rows."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and (before_epoch is None or row["epoch"] <= before_epoch):
            rows.append(row)
    return rows
