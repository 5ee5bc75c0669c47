"""Training a DeepSDF autodecoder: decoder weights and one latent code per training shape.

Run directory::

    RUN_DIR/checkpoints/latest.pt        last checkpoint (self-describing; see core.checkpoint)
    RUN_DIR/checkpoints/epoch_<E>.pt     periodic snapshots (the last ``keep_last`` are kept)
    RUN_DIR/checkpoints/last_good.pt     only after a NaN/inf loss: the state just before that step
    RUN_DIR/metrics.jsonl                one line per epoch: losses (means over the epoch's instances), learning rates, seconds, points/s
    RUN_DIR/tensorboard/                 the same scalars, when TensorBoard is installed
    RUN_DIR/loss.png                     the loss curve, at the end
    RUN_DIR/budget.json                  with ``budget=``: the budget, the recipe, how far training got

*Epochs or a time budget.* By default training runs ``epochs`` epochs. With ``budget=30m`` (also
``90s``, ``2h``) it runs until that much wall-clock time has passed in the training loop (packing the
store and building the model are not counted), then writes its checkpoint. Every schedule is laid
over the budget instead of the epoch count: at a fraction ``p`` of the budget the learning rates and
the prior's ramp are where they would be at epoch ``p * epochs`` (``schedule_epoch``), so the
learning-rate halvings of DeepSDF's 2000-epoch recipe fall at a quarter, half and three quarters of
the budget whatever the machine's speed. A resumed budget run continues its clock from the checkpoint.
A budget run is not bit-reproducible (where it stops depends on the machine's speed); an epoch run is.

Each epoch visits every scene once in a seeded random order, in batches of ``scenes_per_batch``
scenes with ``samples_per_scene`` samples each, drawn from the packed memory-mapped store by
vectorised indexing (``shapes.dataset``). Dropout and sampling draw from generators seeded by
``(seed, epoch)``, and checkpoints are written atomically at epoch boundaries with everything else
a step depends on (weights, codes, Adam's moments, the fp16 loss scale), so a run killed at any
moment and started again resumes from its last checkpoint and ends with the same weights and codes
as an uninterrupted run.

Under ``torchrun --nproc_per_node=N`` (see :mod:`sdf_autodec.core.distributed`) the N processes
train one model with DistributedDataParallel: each global batch is drawn exactly as a single process
would draw it, and process r trains on its scenes ``r, r + N, ...``; the gradients of the decoder
and of the latent table are averaged in DDP's all-reduce, so every process keeps identical weights
and codes. Only rank 0 writes files.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm import tqdm

from sdf_autodec.atomic import atomic_write
from sdf_autodec.core.checkpoint import CheckpointError, TrainingState, load_checkpoint
from sdf_autodec.core.distributed import DistContext, init_distributed
from sdf_autodec.core.devices import resolve_device
from sdf_autodec.core.engine import Autodecoder, GlobalBatch, NonFiniteLoss, make_optimizer, training_step
from sdf_autodec.core.latents import LatentTable
from sdf_autodec.core.observations import Observations
from sdf_autodec.core.rundir import RunDir
from sdf_autodec.core.seeding import seed_global, torch_generator
from sdf_autodec.core.training import epoch_batches, linear_ramp, lr_factor, parse_budget, run_epoch, schedule_epoch, set_learning_rates
from sdf_autodec.geometry.frames import instance_id, rotation_set
from sdf_autodec.nn.mlp import DecoderConfig, decoder_config_from_dict
from sdf_autodec.nn.registry import build_decoder
from sdf_autodec.optional import tensorboard_writer
from sdf_autodec.shapes.dataset import PackedSdfSamples, resolve_split
from sdf_autodec.shapes.loss import clamped_l1

CHECKPOINT_KIND = "shapes"
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}

__all__ = ["TrainConfig", "TrainedModel", "train", "load_trained", "train_config_from_dict", "decoder_config_from_dict", "code_reg_at"]


@dataclass
class TrainConfig:
    """Training of the SDF autodecoder (defaults: the DeepSDF recipe; see ``conf/recipe/deepsdf.yaml``)."""

    data: str = ""
    """Data directory written by ``sdf-autodec prep``."""
    run: str = ""
    """Run directory (checkpoints, metrics)."""
    split: str = ""
    """Split json (path, or name under DATA/splits/); default: DATA/splits/train.json, else all shapes."""
    model: DecoderConfig = field(default_factory=DecoderConfig)
    """Decoder architecture."""
    epochs: int = 2000
    """Epochs to train (a resumed run continues up to this number). With ``budget``: the length the
    schedules are written for (``lr_halve_every``, ``code_reg_rampup_epochs``), stretched over the budget."""
    budget: str = ""
    """Wall-clock budget of the training loop: ``90s``, ``30m``, ``2h`` or seconds; empty: run ``epochs``."""
    scenes_per_batch: int = 64
    """Scenes per optimisation step (the global batch, whatever the number of processes)."""
    samples_per_scene: int = 16384
    """SDF samples per scene per step, half from ``pos`` and half from ``neg``."""
    lr_decoder: float = 5e-4
    """Adam learning rate of the decoder."""
    lr_codes: float = 1e-3
    """Adam learning rate of the codes."""
    lr_halve_every: int = 500
    """Both learning rates are halved every this many epochs (DeepSDF: from its 500th epoch on)."""
    clamp: float = 0.1
    """DeepSDF's δ: predictions and targets are clamped to [-δ, δ] in the loss."""
    code_reg_weight: float = 1e-4
    """Weight λ of the code prior ``λ ||z||²`` (core.prior), the same at fitting time."""
    code_reg_rampup_epochs: int = 100
    """λ ramps linearly from 0 to its value over this many epochs (DeepSDF)."""
    code_init_std: float = 0.0
    """Std of the initial codes; 0 means 1/sqrt(latent_size) (DeepSDF)."""
    code_max_norm: float = 1.0
    """Codes are capped at this norm (0 disables the cap)."""
    rotations: str = "none"
    """Pose augmentation: ``none``, or ``cube``: each shape is also trained in its 23 other cube
    rotations (signed axis permutations, which keep DeepSDF's frame exact), each pose an instance
    with its own code (id ``<id>@r<k>``): for datasets with no common up axis or front (PSB, ModelNet)."""
    weight_decay: float = 0.0
    """L2 weight decay on the decoder."""
    checkpoint_every: int = 50
    """Epochs between checkpoints (one is always written at the end)."""
    keep_last: int = 2
    """Periodic ``epoch_<E>.pt`` snapshots to keep (``latest.pt`` is always kept)."""
    resume: bool = True
    """Continue from RUN_DIR/checkpoints/latest.pt when it exists."""
    device: str = "auto"
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` (under torchrun: ``cuda:<local rank>``)."""
    amp: str = "off"
    """Mixed precision of the forward pass: ``off`` (fp32), ``bf16`` or ``fp16`` (``torch.autocast``;
    fp16 adds a gradient scaler). Predictions are cast to fp32 before the loss."""
    compile: bool = False
    """Compile the forward pass with ``torch.compile`` (the first steps are slow while it compiles)."""
    compile_backend: str = "inductor"
    """``torch.compile``'s backend: ``inductor`` (generates kernels), or e.g. ``aot_eager`` (traces only; for checks)."""
    prefetch: str = "auto"
    """Draw the next batch's samples in a background thread while the current step runs: ``on``,
    ``off``, or ``auto`` (on with CUDA, where the step does not need the CPU; off on a CPU, where
    the step already uses every core). The samples are the same either way."""
    tensorboard: str = "auto"
    """``auto`` (log to RUN_DIR/tensorboard when TensorBoard is installed), ``on`` (required), ``off``."""
    seed: int = 0
    """Seed of codes, weights, dropout and sampling."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class TrainedModel:
    """A decoder and its training codes, as loaded from a run directory."""

    decoder: torch.nn.Module
    latents: torch.Tensor  # (N, D)
    ids: list[str]
    config: dict
    checkpoint: Path

    @property
    def latent_size(self) -> int:
        return self.latents.shape[1]


def load_trained(run: str | Path, device: str = "auto") -> TrainedModel:
    """Load ``RUN_DIR/checkpoints/latest.pt`` (or a checkpoint file) into a decoder in eval mode."""
    path = Path(run)
    path = path if path.is_file() else RunDir(path).latest
    ckpt = load_checkpoint(path, kind=CHECKPOINT_KIND)
    decoder = build_decoder(decoder_config_from_dict(ckpt["config"]["model"]))
    try:
        decoder.load_state_dict(ckpt["decoder"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: decoder weights do not fit its own config ({str(e).splitlines()[0]})") from None
    dev = resolve_device(device)
    return TrainedModel(decoder.to(dev).eval(), ckpt["latents"].to(dev), list(ckpt["instance_ids"]), ckpt["config"], path)


def code_reg_at(epoch: float, cfg: TrainConfig) -> float:
    """Code prior weight of 0-based ``epoch``: DeepSDF's ``λ · min(1, e / ramp)`` of its 1-based epoch ``e``."""
    return cfg.code_reg_weight * linear_ramp(epoch, cfg.code_reg_rampup_epochs)


def train_config_from_dict(d: dict) -> TrainConfig:
    """A :class:`TrainConfig` from a plain dict (``RUN_DIR/train_config.json``, a checkpoint's ``config``);
    unknown keys are ignored, missing ones take their defaults."""
    known = set(TrainConfig.__dataclass_fields__)
    values = {k: v for k, v in d.items() if k in known and k != "model"}
    return TrainConfig(model=decoder_config_from_dict(d.get("model", {})), **values)


def _config_dict(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))  # plain types only (weights_only loading)


def _model_dict(model: dict | DecoderConfig) -> dict:
    """A decoder config as a plain dict with every field filled (older checkpoints lack newer fields)."""
    cfg = decoder_config_from_dict(model) if isinstance(model, dict) else model
    return json.loads(json.dumps(asdict(cfg)))


def _check_resumable(ckpt: dict, cfg: TrainConfig, ids: list[str], path: Path) -> None:
    if _model_dict(ckpt["config"].get("model", {})) != _model_dict(cfg.model):
        raise CheckpointError(
            f"{path}: checkpoint was trained with model {ckpt['config'].get('model')}, this run asks for {asdict(cfg.model)}; "
            "use another run= directory or resume=false"
        )
    if list(ckpt["instance_ids"]) != ids:
        raise CheckpointError(f"{path}: checkpoint's training shapes differ from this run's split; use another run= directory")


def _validate(cfg: TrainConfig) -> None:
    if not cfg.data or not cfg.run:
        raise ValueError("train needs data=DATA_DIR and run=RUN_DIR")
    if cfg.epochs < 0 or cfg.scenes_per_batch < 1 or cfg.samples_per_scene < 2:
        raise ValueError(f"impossible training config: epochs={cfg.epochs}, scenes_per_batch={cfg.scenes_per_batch}, samples_per_scene={cfg.samples_per_scene}")
    if cfg.budget:
        parse_budget(cfg.budget)
    rotation_set(cfg.rotations)
    if cfg.amp not in AMP_DTYPES:
        raise ValueError(f"amp={cfg.amp!r}: choose one of {', '.join(AMP_DTYPES)}")
    for name in ("tensorboard", "prefetch"):
        if getattr(cfg, name) not in ("auto", "on", "off"):
            raise ValueError(f"{name}={getattr(cfg, name)!r}: choose auto, on or off")


def train(cfg: TrainConfig, *, clock: Callable[[], float] = time.monotonic, recipe: dict | None = None) -> TrainedModel:
    """Train (or resume) a run; returns the trained model. See the module docstring for the files.

    Under ``torchrun`` (``WORLD_SIZE`` > 1), or inside a process group the caller set up, every
    process calls this and trains its shard of each batch; all return the same model.
    ``clock``: seconds, for the budget (a test passes a fake one). ``recipe``: what chose this
    config (``shapes.recipes``), recorded in ``budget.json``.
    """
    _validate(cfg)
    ctx, device = init_distributed(cfg.device)
    try:
        return _train(cfg, ctx, device, clock, recipe)
    finally:
        ctx.close()


def _train(cfg: TrainConfig, ctx: DistContext, device: torch.device, clock: Callable[[], float], recipe: dict | None) -> TrainedModel:
    run = RunDir(cfg.run)
    keys = resolve_split(cfg.data, cfg.split)
    if not ctx.main:
        ctx.barrier()  # rank 0 (re)builds the packed store first
    store = PackedSdfSamples(cfg.data, keys)
    if ctx.main:
        ctx.barrier()
    rotations = torch.from_numpy(rotation_set(cfg.rotations)).float()  # (R, 3, 3), the identity first
    poses = len(rotations)
    ids = [instance_id(shape, r) for shape in store.ids for r in range(poses)]  # instance i: shape i // R in pose i % R

    seed_global(cfg.seed, "init")
    decoder = build_decoder(cfg.model).to(device)
    init_std = cfg.code_init_std or 1.0 / math.sqrt(cfg.model.latent_size)
    latents = LatentTable(len(ids), cfg.model.latent_size, init_std, cfg.code_max_norm or None, torch_generator(cfg.seed, "codes")).to(device)
    optimizer = make_optimizer(decoder, latents, cfg.lr_decoder, cfg.lr_codes, cfg.weight_decay)
    scaler = torch.amp.GradScaler(device.type) if cfg.amp == "fp16" else None
    state = TrainingState(CHECKPOINT_KIND, _config_dict(cfg), decoder, latents, optimizer, scaler, ids)

    start, elapsed_before = 0, 0.0
    if cfg.resume and run.latest.is_file():
        ckpt = load_checkpoint(run.latest, kind=CHECKPOINT_KIND)
        _check_resumable(ckpt, cfg, ids, run.latest)
        start, extra = state.restore(ckpt)
        elapsed_before = float(extra.get("elapsed_seconds") or 0.0)

    model: torch.nn.Module = Autodecoder(decoder, latents)
    if ctx.active:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model, backend=cfg.compile_backend)

    history: list[dict] = []
    writer = None
    if ctx.main:
        run.prepare()
        run.write_json("train_config.json", _config_dict(cfg))
        history = run.metrics_until(start)
        writer_cls = None if cfg.tensorboard == "off" else tensorboard_writer(required=cfg.tensorboard == "on")
        if writer_cls is not None:
            writer = writer_cls(log_dir=str(run.path / "tensorboard"), purge_step=start + 1)

    element_loss = lambda pred, obs: clamped_l1(pred, obs, cfg.clamp)  # noqa: E731
    amp_dtype = AMP_DTYPES[cfg.amp]
    pin = device.type == "cuda"
    prefetch = cfg.prefetch == "on" or (cfg.prefetch == "auto" and device.type == "cuda")
    steps_per_epoch = math.ceil(len(ids) / cfg.scenes_per_batch)
    budget = parse_budget(cfg.budget) if cfg.budget else None
    t_start = clock()
    elapsed = lambda: elapsed_before + clock() - t_start  # noqa: E731  (seconds of training, resumed runs included)
    save = lambda epoch: run.save(state.payload(epoch, elapsed_seconds=elapsed()), epoch, cfg.keep_last)  # noqa: E731
    at = {"factor": 1.0, "reg": 0.0}  # the schedule at the last step taken (rows of the history, budget.json)

    def train_epoch(epoch: int):
        """One epoch (cut short when the budget runs out); its statistics."""
        seed_global(cfg.seed, "dropout", epoch, *([ctx.rank] if ctx.active else []))  # own dropout masks per process
        generator = torch_generator(cfg.seed, "sampling", epoch)
        batches = epoch_batches(len(ids), cfg.scenes_per_batch, generator)

        def draw(scenes: torch.Tensor) -> torch.Tensor:  # (B or this process's share, n, 4)
            return _posed_rows(store, rotations, scenes, cfg.samples_per_scene, generator, ctx.shard(len(scenes)), pin)

        def before_step(i: int) -> bool:
            now = ctx.from_main(elapsed()) if budget is not None else 0.0  # rank 0's clock: every process agrees
            if budget is not None and now >= budget:
                return False
            schedule_at = epoch if budget is None else schedule_epoch(now, budget, cfg.epochs)
            at["factor"], at["reg"] = lr_factor(schedule_at, cfg.lr_halve_every), code_reg_at(schedule_at, cfg)
            set_learning_rates(optimizer, (cfg.lr_decoder, cfg.lr_codes), at["factor"])
            return True

        def step(i: int, scenes: torch.Tensor, rows: torch.Tensor) -> dict:
            local = ctx.shard(len(scenes))
            rows = rows.to(device, non_blocking=pin)
            obs = Observations(queries=rows[..., :3], targets=rows[..., 3])
            mine = scenes if local is None else scenes[local]
            shard = GlobalBatch(scenes.to(device), ctx.all_reduce_sum) if ctx.active else None
            try:
                stats = training_step(decoder, latents, mine.to(device), obs, element_loss, optimizer, at["reg"], model=model, autocast_dtype=amp_dtype, scaler=scaler, shard=shard)
            except NonFiniteLoss as e:
                raise _stopped(e, run, state, ctx, epoch, i, len(batches), steps_per_epoch) from None
            return asdict(stats)

        return run_epoch(batches, step, fetch=draw, prefetch=prefetch, before_step=before_step)

    decoder.train()
    epochs = range(start, cfg.epochs) if budget is None else itertools.count(start)
    total = cfg.epochs if budget is None else None
    bar = tqdm(epochs, desc="train", unit="epoch", disable=not (cfg.progress and ctx.main), initial=start, total=total)
    done, steps = start, 0
    spent = budget is not None and elapsed() >= budget
    try:
        for epoch in ([] if spent else bar):
            t0 = time.perf_counter()
            stats = train_epoch(epoch)
            steps += stats.steps
            spent = stats.stopped
            if stats.steps == 0:  # the budget ran out before this epoch's first step
                break
            seconds = time.perf_counter() - t0
            done = epoch + 1
            row = {
                "epoch": done, **stats.means, "lr_decoder": cfg.lr_decoder * at["factor"], "lr_codes": cfg.lr_codes * at["factor"],
                "code_reg_weight": at["reg"], "seconds": seconds, "points_per_second": stats.instances * cfg.samples_per_scene / seconds,
                **({"elapsed_seconds": round(elapsed(), 3), "batches": stats.steps} if budget is not None else {}),
            }
            if ctx.main:
                history.append(row)
                run.append_metrics(row)
                if writer is not None:
                    for k in ("loss", "data", "prior", "lr_decoder", "lr_codes", "points_per_second"):
                        writer.add_scalar(f"train/{k}", row[k], done)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                if done % cfg.checkpoint_every == 0 or (budget is None and done == cfg.epochs):
                    save(done)
            if spent:
                break
        if ctx.main and budget is not None and done > start:
            save(done)  # the budget is spent: its checkpoint
        if ctx.main and budget is not None:
            _write_budget(run, cfg, budget, recipe, done, steps, elapsed(), start, at["factor"] if steps else None)
        if ctx.main and not run.latest.is_file() and (start >= cfg.epochs if budget is None else spent):
            save(done)
    finally:
        if writer is not None:
            writer.close()
        if ctx.main:
            _plot_losses(history, run.path / "loss.png")
    ctx.barrier()  # the other processes read the checkpoint rank 0 has just written
    return load_trained(run.path, str(device))


def _posed_rows(store: PackedSdfSamples, rotations: torch.Tensor, instances: torch.Tensor, n: int, generator: torch.Generator, select: torch.Tensor | None, pin: bool) -> torch.Tensor:
    """``(B, n, 4)`` rows of training instances ``instances: (B,)`` (or of their ``select`` share): the
    samples of shape ``i // R`` with their points turned by rotation ``i % R`` (an SDF is unchanged
    by a rotation of its points). One rotation (none) draws exactly what the store draws."""
    poses = len(rotations)
    rows = store.sample_rows(instances // poses, n, generator, select=select, pin_memory=pin)
    if poses > 1:
        mine = instances if select is None else instances[select]
        rows[..., :3] = torch.einsum("bij,bnj->bni", rotations[mine % poses], rows[..., :3])
    return rows


def _stopped(error: NonFiniteLoss, run: RunDir, state: TrainingState, ctx: DistContext, epoch: int, i: int, batches: int, steps_per_epoch: int) -> NonFiniteLoss:
    """Checkpoint the last good state (nothing was updated by the failing step) and say what to do."""
    step = epoch * steps_per_epoch + i + 1
    if ctx.main:
        run.save_last_good(state.payload(epoch, step=step, epoch_step=i, stopped="non-finite loss at this step"))
    last_good = run.last_good  # written by rank 0; every process names it
    resume = f"a re-run resumes from {run.latest}" if run.latest.is_file() else "a re-run starts over"
    return NonFiniteLoss(
        f"{error} at step {step} (epoch {epoch + 1}, batch {i + 1}/{batches}): training stopped; the state before that step "
        f"is saved in {last_good} ({resume}). Hint: lower lr_decoder/lr_codes, use amp=off or bf16 instead of fp16, "
        "or check the data for NaNs."
    )


def _write_budget(run: RunDir, cfg: TrainConfig, budget: float, recipe: dict | None, epochs: int, steps: int, elapsed: float, start: int, last_factor: float | None) -> None:
    """``RUN_DIR/budget.json``: the budget, what chose the recipe, and how far training got."""
    halvings = [k * cfg.lr_halve_every / cfg.epochs for k in range(1, cfg.epochs // cfg.lr_halve_every + 1)] if cfg.lr_halve_every > 0 and cfg.epochs > 0 else []
    record = {
        "budget": cfg.budget,
        "budget_seconds": budget,
        "recipe": recipe or {"name": "as configured", "reason": "the configuration given (recipe=, model= or explicit keys)"},
        "elapsed_seconds": round(elapsed, 3),
        "epochs_done": epochs,
        "steps_this_session": steps,
        "resumed_from_epoch": start,
        "schedule": {
            "epochs_laid_over_budget": cfg.epochs,
            "lr_halved_at_budget_fractions": [round(h, 4) for h in halvings if h < 1.0],
            "prior_ramp_ends_at_budget_fraction": round(min(1.0, cfg.code_reg_rampup_epochs / cfg.epochs), 4) if cfg.epochs > 0 else 0.0,
        },
        "last_step_lr_decoder": None if last_factor is None else cfg.lr_decoder * last_factor,
        "last_step_lr_codes": None if last_factor is None else cfg.lr_codes * last_factor,
    }
    run.write_json("budget.json", record)


def _plot_losses(history: list[dict], path: Path) -> None:
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [r["epoch"] for r in history]
    ax.semilogy(epochs, [max(r["data"], 1e-12) for r in history], label="data (clamped L1)")
    ax.semilogy(epochs, [max(r["prior"], 1e-12) for r in history], label="code prior")
    ax.set_xlabel("epoch")
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)
