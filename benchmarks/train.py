"""Benchmark: training throughput (SDF points per second) of our data path against its ceiling and DeepSDF's loader.

    .venv/bin/python benchmarks/train.py [--quick] [--presets small,deepsdf] [--device cpu|cuda] [--amp off|bf16|fp16]
                                         [--compile] [--threads N] [--repeats R]

For each recipe (``conf/recipe/<preset>.yaml``: its decoder, scenes per batch, samples per scene):

- (a) **ours**: ``sdf_autodec.shapes.train.train`` itself, i.e. the real loop: samples drawn from the
  packed memory-mapped store (vectorised per-scene indexing), the joint step of the decoder and the
  latent table, statistics, metrics.jsonl; points/s from its per-epoch timings, first epoch excluded
  (with ``--compile`` it holds the compilation);
- (b) **ceiling**: the bare decoder forward + backward + Adam step (decoder and batch codes) on
  tensors already in memory, same architecture, batch, loss and precision: this machine's best;
- (c) **naive loader**: DeepSDF's ``SDFSamples`` (re-reads each scene's npz at every step: ``np.load``,
  ``remove_nans``, random indices) in a ``torch.utils.data.DataLoader`` with 0 and 2 worker processes,
  feeding the same training step as (a); the faster of the two counts.

Each figure is the median over the timed steps (epochs for (a)) of points per second.

The data are synthetic: 64 spheres and boxes with random sizes, 500k samples each as DeepSDF's and
our ``prep`` write them, in the DeepSDF npz layout (``write_sdf_samples``); they are generated once
into ``--data`` (a temporary folder) and reused. On a CPU the ``deepsdf`` preset runs with fewer
samples per scene (``--deepsdf-samples``; 256, or 32 with ``--quick``) and its 64 scenes per batch:
its 64 x 16384 points per step would need ~50 GB of activations and minutes per step; the value used
is printed. Each measurement is repeated ``--repeats`` times, interleaved, and the best kept (other
jobs on the machine only ever slow a run down). ``--quick``: fewer steps, one repeat.
Targets: (a) >= 0.85 x (b) and (a) >= 3 x (c). The last line is JSON with ``ratio_to_ceiling_<preset>``,
``speedup_vs_naive_loader_<preset>`` and ``speedup_vs_naive_loader`` (the smallest over the presets).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import finish, setup  # noqa: E402
from tests.factories import analytic_sdf_dataset  # noqa: E402  (the tests' factory)

from sdf_autodec.core.devices import resolve_device  # noqa: E402
from sdf_autodec.core.engine import Autodecoder, backward_and_step, make_optimizer, training_step  # noqa: E402
from sdf_autodec.core.latents import LatentTable  # noqa: E402
from sdf_autodec.core.observations import Observations  # noqa: E402
from sdf_autodec.storage.layout import DatasetLayout  # noqa: E402
from sdf_autodec.storage.packed import open_packed  # noqa: E402
from sdf_autodec.nn.registry import build_decoder  # noqa: E402
from sdf_autodec.shapes.loss import clamped_l1  # noqa: E402
from sdf_autodec.shapes.train import AMP_DTYPES, TrainConfig, train  # noqa: E402

SHAPES = 64
SAMPLES_PER_SHAPE = 500_000


def preset_config(name: str) -> TrainConfig:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    import sdf_autodec.cli.commands  # noqa: F401  (registers the schemas)

    with initialize_config_module(config_module="sdf_autodec.conf", version_base=None):
        return OmegaConf.to_object(compose(config_name="train", overrides=[f"recipe={name}"]))


def ours(cfg: TrainConfig, data: Path, epochs: int, work: Path) -> float:
    """(a): the real training loop; points per second over its epochs after the first."""
    run = work / f"run_{time.monotonic_ns()}"
    cfg.data, cfg.run, cfg.epochs, cfg.checkpoint_every, cfg.keep_last = str(data), str(run), epochs, 10**9, 0
    cfg.progress, cfg.tensorboard = False, "off"
    train(cfg)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][1:]
    return float(np.median([r["points_per_second"] for r in rows]))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ceiling(cfg: TrainConfig, device: torch.device, steps: int, warmup: int = 2) -> float:
    """(b): decoder forward + backward + Adam on in-memory tensors (the same batch, loss and precision)."""
    torch.manual_seed(0)
    decoder = build_decoder(cfg.model).to(device).train()
    b, n = cfg.scenes_per_batch, cfg.samples_per_scene
    codes = torch.nn.Parameter(torch.randn(b, cfg.model.latent_size, device=device) / math.sqrt(cfg.model.latent_size))
    optimizer = torch.optim.Adam([{"params": decoder.parameters(), "lr": cfg.lr_decoder}, {"params": [codes], "lr": cfg.lr_codes}])
    queries = torch.rand(b, n, 3, device=device) * 2 - 1
    targets = (torch.rand(b, n, device=device) - 0.5) * 0.2
    amp = AMP_DTYPES[cfg.amp]
    model = torch.compile(decoder, backend=cfg.compile_backend) if cfg.compile else decoder
    scaler = torch.amp.GradScaler(device.type) if cfg.amp == "fp16" else None
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            pred = model(codes, queries)
        pred = pred.float().squeeze(-1)
        loss = (pred.clamp(-cfg.clamp, cfg.clamp) - targets.clamp(-cfg.clamp, cfg.clamp)).abs().mean() + cfg.code_reg_weight * codes.pow(2).sum(-1).mean()
        backward_and_step(loss, optimizer, scaler)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return b * n / float(np.median(times[warmup:]))


class NaiveSdfSamples(torch.utils.data.Dataset):
    """DeepSDF's ``deep_sdf.data.SDFSamples`` with ``load_ram=False``: every item re-reads its npz."""

    def __init__(self, files: list[Path], subsample: int):
        self.files, self.subsample = files, subsample

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, idx: int):
        npz = np.load(self.files[idx])
        pos = _remove_nans(torch.from_numpy(npz["pos"]))
        neg = _remove_nans(torch.from_numpy(npz["neg"]))
        half = self.subsample // 2
        sample_pos = torch.index_select(pos, 0, (torch.rand(half) * pos.shape[0]).long())
        sample_neg = torch.index_select(neg, 0, (torch.rand(half) * neg.shape[0]).long())
        return torch.cat([sample_pos, sample_neg], 0), idx


def _remove_nans(t: torch.Tensor) -> torch.Tensor:
    return t[~torch.isnan(t[:, 3]), :]


def naive(cfg: TrainConfig, data: Path, device: torch.device, steps: int, workers: int, warmup: int = 2) -> float:
    """(c): DeepSDF's loader (npz re-read per scene per step) feeding the same training step as (a)."""
    layout = DatasetLayout(data)
    files = [layout.sdf(k) for k in layout.sdf_keys()]
    loader = torch.utils.data.DataLoader(
        NaiveSdfSamples(files, cfg.samples_per_scene), batch_size=cfg.scenes_per_batch, shuffle=True,
        num_workers=workers, drop_last=True, persistent_workers=workers > 0,
    )
    torch.manual_seed(0)
    decoder = build_decoder(cfg.model).to(device).train()
    latents = LatentTable(len(files), cfg.model.latent_size, 1 / math.sqrt(cfg.model.latent_size), cfg.code_max_norm or None).to(device)
    optimizer = make_optimizer(decoder, latents, cfg.lr_decoder, cfg.lr_codes)
    loss = lambda pred, obs: clamped_l1(pred, obs, cfg.clamp)  # noqa: E731
    model = Autodecoder(decoder, latents)  # the same step as (a): precision and compilation included
    model = torch.compile(model, backend=cfg.compile_backend) if cfg.compile else model
    options = {"model": model, "autocast_dtype": AMP_DTYPES[cfg.amp], "scaler": torch.amp.GradScaler(device.type) if cfg.amp == "fp16" else None}
    times: list[float] = []
    while len(times) < warmup + steps:
        t0 = time.perf_counter()
        for sdf_data, index in loader:  # the time of a step includes waiting for its batch
            rows = sdf_data.to(device)  # (B, n, 4)
            obs = Observations(queries=rows[..., :3], targets=rows[..., 3])
            training_step(decoder, latents, index.to(device), obs, loss, optimizer, cfg.code_reg_weight, **options)
            _sync(device)
            times.append(time.perf_counter() - t0)
            if len(times) == warmup + steps:
                break
            t0 = time.perf_counter()
    return cfg.scenes_per_batch * cfg.samples_per_scene / float(np.median(times[warmup:]))


def cached_dataset(folder: Path) -> Path:
    """The synthetic dataset in ``folder``, generated (and packed) on the first call only."""
    stamp = folder / "complete.json"
    want = {"shapes": SHAPES, "samples": SAMPLES_PER_SHAPE, "version": 1}
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        return folder
    t0 = time.perf_counter()
    analytic_sdf_dataset(folder, SHAPES, SAMPLES_PER_SHAPE)
    open_packed(folder)  # the packed store is built once, as `prep` does; not timed below
    stamp.write_text(json.dumps(want))
    print(f"data: generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--presets", default="small,deepsdf")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--prefetch", default="auto", choices=["auto", "on", "off"], help="TrainConfig.prefetch for (a)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=0, help="interleaved repeats, best kept (0: 1 with --quick, else 3)")
    parser.add_argument("--deepsdf-samples", type=int, default=0, help="samples per scene for deepsdf (0: 16384 on a GPU; 256 on a CPU, 32 with --quick)")
    parser.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "sdf-autodec-bench-train"), help="synthetic data folder (generated once, reused)")
    args = parser.parse_args()
    setup(args.threads)
    repeats = args.repeats or (1 if args.quick else 3)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f} (other jobs distort the ratios); best of {repeats} interleaved repeats", flush=True)
    data = cached_dataset(Path(args.data))
    size = sum(p.stat().st_size for p in (data / "SdfSamples").rglob("*.npz")) / 2**20
    print(f"data: {SHAPES} synthetic shapes x {SAMPLES_PER_SHAPE} samples ({size:.0f} MiB of npz) in {data}", flush=True)

    result: dict = {"device": str(device), "quick": args.quick, "amp": args.amp, "compile": args.compile, "threads": torch.get_num_threads()}
    speedups = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.presets.split(","):
            cfg = preset_config(name)
            cfg.device, cfg.amp, cfg.compile, cfg.prefetch = str(device), args.amp, args.compile, args.prefetch
            if name == "deepsdf":
                cfg.samples_per_scene = args.deepsdf_samples or (16384 if device.type == "cuda" else (32 if args.quick else 256))
            step_points = cfg.scenes_per_batch * cfg.samples_per_scene
            steps_per_epoch = math.ceil(SHAPES / cfg.scenes_per_batch)
            timed = (2 if args.quick else 6) if steps_per_epoch == 1 else (8 if args.quick else 96)  # a few seconds each
            warmup = 1 if steps_per_epoch == 1 or args.quick else 2
            epochs = 1 + math.ceil(timed / steps_per_epoch)  # (a)'s first epoch is its warm-up
            print(f"\n{name}: {cfg.model.depth} x {cfg.model.width}, latent {cfg.model.latent_size}, {cfg.scenes_per_batch} scenes x "
                  f"{cfg.samples_per_scene} samples = {step_points} points per step; {timed} timed steps", flush=True)
            runs: dict[str, list[float]] = {"ceiling": [], "ours": [], "naive_0_workers": [], "naive_2_workers": []}
            for _ in range(repeats):
                runs["ceiling"].append(ceiling(cfg, device, timed, warmup))
                runs["ours"].append(ours(cfg, data, epochs, work))
                runs["naive_0_workers"].append(naive(cfg, data, device, timed, 0, warmup))
                runs["naive_2_workers"].append(naive(cfg, data, device, timed, 2, warmup))
            best = {k: max(v) for k, v in runs.items()}
            a, b = best["ours"], best["ceiling"]
            naive_best = max(best["naive_0_workers"], best["naive_2_workers"])
            print(f"  (b) ceiling, decoder step on tensors in memory: {b:12,.0f} points/s   (all: {_fmt(runs['ceiling'])})")
            print(f"  (a) ours, the training loop:                   {a:12,.0f} points/s = {a / b:.3f} x ceiling   (all: {_fmt(runs['ours'])})")
            for w in (0, 2):
                v = best[f"naive_{w}_workers"]
                print(f"  (c) naive loader, {w} worker processes:         {v:12,.0f} points/s -> ours is {a / v:.2f}x   (all: {_fmt(runs[f'naive_{w}_workers'])})")
            result[f"points_per_second_{name}"] = best
            result[f"samples_per_scene_{name}"] = cfg.samples_per_scene
            result[f"ratio_to_ceiling_{name}"] = a / b
            result[f"speedup_vs_naive_loader_{name}"] = a / naive_best
            speedups.append(a / naive_best)
    result["speedup_vs_naive_loader"] = min(speedups)
    finish(result)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:,.0f}" for v in values)


if __name__ == "__main__":
    main()
