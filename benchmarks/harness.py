"""What the benchmarks share (imported as ``benchmarks.harness`` once the repository is on
``sys.path``, which each benchmark's first lines do):

- :func:`require` — the shared data a benchmark needs: when a path is absent it prints why, then
  the JSON line ``{"skipped": ...}``, and exits 0 (a benchmark without its data is skipped, not failed);
- :func:`setup` — the process settings every timed run uses: glibc's allocator tuned
  (``sdf_autodec.optional.tune_glibc_malloc``) and, when asked, torch's thread count;
- :func:`quick_run` — a ``--quick`` smoke run's sizes and its own work folder;
- :func:`finish` — the figures' JSON as the last line of the output, and the stored copy under
  ``--out`` (indented, written whole or not at all);
- :func:`prep_and_train` — the completion benchmarks' prep of their meshes and training;
- :func:`completion_training` — ``recipe=completion`` as the two completion benchmarks,
  ``pcn_demo.py`` and ``dvr_tables.py``, train it, so that both train the same way.

Each benchmark says what its own ``--quick`` shrinks (``quick_run`` applies it) and its data factories come
from the tests (``tests.factories``, ``tests.damage``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from data_prep.prep import PrepConfig, prep_dataset
from data_prep.sampling import SampleConfig
from data_prep.scanner import ScanConfig

from sdf_autodec.atomic import atomic_write
from sdf_autodec.optional import tune_glibc_malloc
from sdf_autodec.shapes.recipes import apply_preset
from sdf_autodec.shapes.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
"""The workspace's real data (``../shared/data``), never copied into the repository."""


def require(name: str, *paths: Path, why: str = "") -> None:
    """Skip the benchmark ``name`` (print the reason and ``{"skipped": ...}``, exit 0) unless every path exists."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        reason = f"{missing[0]} not found" + (f" ({why})" if why else "")
        print(f"[{name}] skipped: {reason}")
        print(json.dumps({"skipped": reason}))
        sys.exit(0)


def setup(threads: int = 0) -> None:
    """Tune glibc's allocator (large tensors freed and reallocated every step) and, with ``threads > 0``,
    run torch on that many threads."""
    tune_glibc_malloc()
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def quick_run(args, name: str, **values) -> Path:
    """With ``--quick``: ``args``' fields set to ``values`` (the smoke run's sizes) and ``args.work``
    renamed to the sibling folder ``name``, so that a smoke run never reuses a full run's data.
    Returns the work folder either way."""
    if args.quick:
        args.work = str(Path(args.work).with_name(name))
        for key, value in values.items():
            setattr(args, key, value)
    return Path(args.work)


def finish(figures: dict, out: str | Path = "", stored: dict | None = None) -> None:
    """Print ``figures`` as the JSON last line; with ``out`` (a ``.json`` path), store ``stored``
    (default: ``figures``) there, indented, creating its folder."""
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(figures if stored is None else stored, indent=2)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    print(json.dumps(figures))


def prep_and_train(work: Path, dataset: str, epochs: int, width: int, quick: bool, seconds: dict, since: float):
    """The completion benchmarks' model: ``prep`` of ``work/meshes`` into ``work/data`` (unit-cube
    frame, 100k samples per shape, 20k with ``quick``; no scans, no test split, one worker), then
    :func:`completion_training` into ``work/run``. Records ``seconds["prep"]`` (from ``since``, so a
    caller's mesh generation counts in it) and ``seconds["train"]``, prints a line each, and returns
    prep's report and the trained model."""
    report = prep_dataset(
        PrepConfig(input=str(work / "meshes"), output=str(work / "data"), dataset=dataset, normalization="unit_cube",
                   samples=SampleConfig(num_samples=20_000 if quick else 100_000, surface_points=5_000),
                   scans=ScanConfig(views=0), test_fraction=0.0, workers=1, progress=False)
    )
    seconds["prep"] = time.perf_counter() - since
    print(f"prep: {len(report.ok)} shapes ok, {len(report.rejected)} rejected, {len(report.failed)} failed ({seconds['prep']:.0f} s)", flush=True)
    t0 = time.perf_counter()
    trained = train(completion_training(work, epochs, width))
    seconds["train"] = time.perf_counter() - t0
    print(f"train: {len(trained.ids)} shapes, {epochs} epochs ({seconds['train']:.0f} s)", flush=True)
    return report, trained


def completion_training(work: Path, epochs: int, width: int = 128) -> TrainConfig:
    """The completion benchmarks' training of ``work/data`` into ``work/run``: ``recipe=completion``
    (``conf/recipe/completion.yaml``: the small decoder with a 64-dimensional code, 8 scenes × 2048
    samples per step, the learning rates halved once, half-way through ``epochs``, and the code prior
    ramped up over the first tenth), here ``width`` wide and ``epochs`` long. The same training from
    the command line: ``sdf-autodec train recipe=completion epochs=E lr_halve_every=E/2
    code_reg_rampup_epochs=E/10 model.width=W``."""
    cfg = apply_preset(TrainConfig(data=str(work / "data"), run=str(work / "run"), progress=False), "completion")
    cfg.epochs, cfg.lr_halve_every, cfg.code_reg_rampup_epochs = epochs, max(1, epochs // 2), max(1, epochs // 10)
    cfg.model.width = width
    return cfg
