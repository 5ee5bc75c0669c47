"""``sdf-autodec reconstruct``: DeepSDF's unknown-shape protocol. Codes are fitted to each test
shape's SDF samples against the frozen decoder, many shapes at once, meshed, and scored against the
shapes' surface samples, next to the trivial answers.

By default the fit is DeepSDF's ``reconstruct.py``: 800 Adam iterations, 8000 samples (half inside,
half outside) redrawn at every iteration, lr 5e-3 divided by 10 halfway, the checkpoint's clamp, the
code prior of training (``core.prior``), codes started from ``N(0, 0.01²)``. ``fit=fast`` is this
toolkit's recipe (``conf/fit/fast.yaml``): the nearest training code as the start, fewer and larger
steps, fewer samples, each shape stopping on its own. Each mesh then loses the connected components
that the shape's own SDF samples prove wrong (``clean=components``, ``shapes/clean.py``: floaters
left where the samples are sparse); ``clean=none`` keeps the decoder's level set as it is.

Reference rows, in every report (``reconstruction.json``), each scored like ours:

- ``mean_shape``: the zero code (the centre of the prior), meshed once;
- ``retrieval``: the training code with the lowest loss on the test shape's SDF samples, meshed: what
  a lookup of the training set by the same observations gives;
- ``oracle``: the training shape whose ground-truth surface is nearest (Chamfer, unit sphere) to the
  test shape's, scored sample against sample: the best any choice of a training shape can do.

Writes, in OUTPUT::

    <id>.ply                      reconstructed mesh (the model's normalised frame, or ``frame=source``)
    latents.npz                   names (S,), codes (S, D)
    references/mean_shape.ply     the zero code's mesh (normalised frame)
    references/retrieval/<id>.ply the retrieved training code's mesh (normalised frame)
    reconstruction.json           config, per-shape rows and medians/means of every method in both frames, seconds, failures
                                  (``seconds_per_shape.fit`` includes the retrieval of the starting code)
    reconstruction.csv            one row per shape and method: the headline metrics in both frames

Chamfer is DeepSDF's (squared distances, mean each way, summed; 30000 points a side) in the
unit-sphere frame (``normalized``) and in each shape's source frame (``source``: the frame DeepSDF
publishes in, for ShapeNet's own normalisation); see docs/metrics.md.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import trimesh
from tqdm import tqdm

from sdf_autodec.atomic import atomic_write_bytes
from sdf_autodec.core.fitting import FitConfig, fit_latents, keyed_initial_codes, nearest_codes
from sdf_autodec.core.observations import Observations
from sdf_autodec.core.seeding import torch_generator
from sdf_autodec.storage.layout import DatasetError, DatasetLayout, ShapeKey, read_normalization, read_sdf_samples, write_json, write_latents
from sdf_autodec.shapes.clean import CLEAN_MODES, clean_mesh
from sdf_autodec.shapes.evaluate import EvalConfig, score_mesh
from sdf_autodec.shapes.ground_truth import FRAMES, GroundTruthSource
from sdf_autodec.shapes.references import TrainingSurfaces, write_reference_meshes
from sdf_autodec.shapes.loss import clamped_l1
from sdf_autodec.shapes.mesh import EmptyLevelSet, MeshConfig, extract_meshes, write_mesh
from sdf_autodec.shapes.train import TrainedModel, load_trained

INITS = ("random", "nearest", "mean")
METHODS = ("ours", "mean_shape", "retrieval", "oracle")
HEADLINE = ("chamfer", "chamfer_x1000", "chamfer_l1", "fscore@1%", "fscore@2%", "normal_consistency", "mesh_accuracy", "mesh_completion")


@dataclass
class ReconstructConfig:
    """Reconstruction of unknown shapes from their SDF samples (DeepSDF's protocol)."""

    run: str = ""
    """Run directory (or checkpoint file) of a trained model."""
    data: str = ""
    """Data directory of the test shapes (``sdf-autodec prep``): SDF samples to fit, surface samples to score."""
    split: str = ""
    """Split json (path, or name under DATA/splits/, e.g. ``test``); default: every shape with SDF samples."""
    output: str = ""
    """Folder for the meshes, codes and report."""
    fit: FitConfig = field(default_factory=FitConfig)
    """Latent optimisation (default: DeepSDF's reconstruction; ``fit=fast``: this toolkit's recipe)."""
    samples: int = 8000
    """SDF samples per shape and step, half from ``pos``, half from ``neg`` (DeepSDF: 8000)."""
    resample: bool = True
    """Redraw the samples at every step (DeepSDF); ``false``: one fixed draw for the whole fit."""
    far_share: float = 0.0
    """Share of each step's samples drawn from those at least ``far_from`` from the surface (0: DeepSDF's
    draw). DeepSDF's samples crowd the surface (47 in 50), so a fitted code pays little for surface
    where the shape has free space; drawing more of the far ones makes it pay."""
    far_from: float = 0.05
    """``|sdf|`` from which a sample counts as far (unit-sphere frame)."""
    init: str = "random"
    """Starting code: ``random`` (``N(0, fit.init_std²)``, DeepSDF), ``nearest`` (the training code with
    the lowest loss on the shape's samples) or ``mean`` (the zero code)."""
    retrieval_probe: int = 500
    """Retrieval (``init=nearest`` and the retrieval row): every training code is tried on this many of
    a shape's samples, and the ``retrieval_shortlist`` best on all ``samples`` of its scoring draw."""
    retrieval_shortlist: int = 16
    """Codes per shape kept for the second round of retrieval."""
    clamp: float = 0.0
    """Clamp δ of the loss; 0: the checkpoint's (DeepSDF)."""
    batch_size: int = 16
    """Shapes fitted and meshed together."""
    mesh: MeshConfig = field(default_factory=lambda: MeshConfig(resolution=128))
    """Mesh extraction (resolution 128, as the DeepSDF anchor in benchmarks/represent.py)."""
    clean: str = "components"
    """Remove the surface the shape's own SDF samples prove wrong (``shapes/clean.py``): ``components``
    (whole connected components, mostly ruled out), ``faces`` (every ruled-out face; leaves holes) or ``none``."""
    clean_margin: float = 0.0
    """How far off (unit-sphere frame) the samples must prove a vertex before it is removed; 0: the clamp."""
    frame: str = "normalized"
    """Frame of the written meshes: ``normalized`` (the model's, as ``mesh`` writes them) or ``source``."""
    evaluate: bool = True
    """Score the meshes against the test shapes' surface samples (needs DATA/SurfaceSamples)."""
    references: bool = True
    """Also build and score the mean-shape, retrieval and oracle rows."""
    num_points: int = 30_000
    """Surface points per side for Chamfer and F-score (DeepSDF: 30000)."""
    iou_points: int = 0
    """Uniform points of a volumetric IoU (0: none; DeepSDF reports none)."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda``."""
    progress: bool = True
    """Show progress bars."""


@dataclass
class _Shape:
    key: ShapeKey
    pos: torch.Tensor  # (P, 4)
    neg: torch.Tensor  # (Q, 4)
    far: torch.Tensor  # (F, 4): the rows of both with |sdf| >= far_from


def _validate(cfg: ReconstructConfig) -> None:
    if not cfg.run or not cfg.data or not cfg.output:
        raise ValueError("reconstruct needs run=RUN_DIR data=TEST_DATA_DIR output=OUT_DIR")
    if cfg.init not in INITS:
        raise ValueError(f"init={cfg.init!r}: choose one of {', '.join(INITS)}")
    if cfg.frame not in FRAMES:
        raise ValueError(f"frame={cfg.frame!r}: choose normalized or source")
    if cfg.clean not in CLEAN_MODES:
        raise ValueError(f"clean={cfg.clean!r}: choose one of {', '.join(CLEAN_MODES)}")
    if cfg.clean_margin < 0:
        raise ValueError(f"clean_margin={cfg.clean_margin}: give a distance >= 0 (0: the clamp)")
    if not 0.0 <= cfg.far_share < 1.0:
        raise ValueError(f"far_share={cfg.far_share}: give a share in [0, 1)")
    if cfg.samples < 2 or cfg.batch_size < 1 or cfg.fit.iterations < 1:
        raise ValueError(f"impossible reconstruct config: samples={cfg.samples}, batch_size={cfg.batch_size}, fit.iterations={cfg.fit.iterations}")


def reconstruction_keys(data: str | Path, split: str = "") -> list[ShapeKey]:
    """The shapes to reconstruct: ``split`` (a json path, or a name under ``DATA/splits/``), else every
    shape with SDF samples; raises :class:`DatasetError` when there are none."""
    layout = DatasetLayout(data)
    if not layout.root.is_dir():
        raise DatasetError(f"{layout.root}: data directory not found")
    if split:
        path, keys = layout.split_keys(split)
        if not keys:
            raise DatasetError(f"{path}: the split lists no shapes")
        return keys
    keys = layout.sdf_keys()
    if not keys:
        raise DatasetError(f"{layout.root}: no SDF samples (SdfSamples/<dataset>/<class>/<id>.npz); make them with `sdf-autodec prep`")
    return keys


def _draw(shape: _Shape, n: int, g: torch.Generator, far_share: float = 0.0) -> torch.Tensor:
    """``(n, 4)`` rows with replacement: ``round(far_share * n)`` from the far rows (when there are any),
    then of the rest half from ``pos`` and half from ``neg`` (DeepSDF)."""
    n_far = int(round(far_share * n)) if len(shape.far) else 0
    half = (n - n_far) // 2
    parts = [shape.pos[torch.randint(len(shape.pos), (half,), generator=g)], shape.neg[torch.randint(len(shape.neg), (n - n_far - half,), generator=g)]]
    if n_far:
        parts.append(shape.far[torch.randint(len(shape.far), (n_far,), generator=g)])
    return torch.cat(parts)


def _clean(mesh, shape: _Shape, mode: str, margin: float):
    """``(mesh, stats)``: ``mesh`` cleaned against all of the shape's samples (``shapes/clean.py``)."""
    if isinstance(mesh, EmptyLevelSet):
        return mesh, None
    return clean_mesh(mesh, torch.cat([shape.pos, shape.neg]).numpy(), margin, mode)


def _observations(rows: list[torch.Tensor], device: torch.device) -> Observations:
    block = torch.stack(rows).to(device)  # (K, n, 4)
    return Observations(queries=block[..., :3], targets=block[..., 3])


def reconstruct(cfg: ReconstructConfig) -> dict:
    """Fit, mesh and score every test shape; returns the report written to ``reconstruction.json``."""
    _validate(cfg)
    model = load_trained(cfg.run, cfg.device)
    device = model.latents.device
    clamp = cfg.clamp or float(model.config.get("clamp", 0.1))
    element_loss = lambda pred, obs: clamped_l1(pred, obs, clamp)  # noqa: E731
    layout = DatasetLayout(cfg.data)
    keys = reconstruction_keys(cfg.data, cfg.split)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"run": str(model.checkpoint), "config": json.loads(json.dumps(asdict(cfg))), "clamp": clamp, "shapes": {}, "failed": {}}
    training = set(model.ids)

    shapes = []
    for key in keys:
        try:
            pos, neg = read_sdf_samples(layout.sdf(key))
        except DatasetError as e:
            report["failed"][key.id] = str(e)
            tqdm.write(f"reconstruct: skipped {e}")
            continue
        rows = np.concatenate([pos, neg])
        shapes.append(_Shape(key, torch.from_numpy(pos), torch.from_numpy(neg), torch.from_numpy(rows[np.abs(rows[:, 3]) >= cfg.far_from])))

    names, codes, retrieved = [], [], {}
    seconds = {"fit": 0.0, "mesh": 0.0}
    batches = [shapes[i : i + cfg.batch_size] for i in range(0, len(shapes), cfg.batch_size)]
    for batch in tqdm(batches, desc="reconstruct", unit="batch", disable=not cfg.progress):
        t0 = time.perf_counter()
        # every draw is keyed by the shape's id: a shape's result does not depend on its batch
        gens = {s.key.id: torch_generator(cfg.fit.seed, "reconstruct", s.key.id) for s in batch}
        scoring = _observations([_draw(s, cfg.samples, torch_generator(cfg.fit.seed, "score", s.key.id), cfg.far_share) for s in batch], device)

        def sample(restart: int, step: int, batch=batch, gens=gens) -> Observations:
            return _observations([_draw(s, cfg.samples, gens[s.key.id], cfg.far_share) for s in batch], device)

        index, t_retrieval = None, 0.0
        if cfg.init == "nearest" or (cfg.evaluate and cfg.references):  # retrieval: a start, or the reference row
            probe = scoring.subsample(cfg.retrieval_probe, torch_generator(cfg.fit.seed, "probe"))  # pos, neg (and far) in proportion
            t_start = time.perf_counter()
            index = nearest_codes(model.decoder, model.latents, scoring, element_loss, probe=probe, shortlist=cfg.retrieval_shortlist)
            if cfg.init != "nearest":  # only the reference row needs it: its cost is not the fit's
                t_retrieval = time.perf_counter() - t_start
        if cfg.init == "nearest":
            init = model.latents[index].clone()
        elif cfg.init == "mean":
            init = torch.zeros(len(batch), model.latent_size, device=device)
        else:
            init = keyed_initial_codes([(cfg.fit.seed, "init", s.key.id) for s in batch], model.latent_size, cfg.fit.init_std, device)
        result = fit_latents(model.decoder, scoring, element_loss, model.latent_size, cfg.fit, init=init, sample=sample if cfg.resample else None)
        t1 = time.perf_counter()
        meshes = extract_meshes(model.decoder, result.codes, cfg.mesh)
        cleaned = [_clean(m, s, cfg.clean, cfg.clean_margin or clamp) for m, s in zip(meshes, batch)]
        t2 = time.perf_counter()
        seconds["fit"] += t1 - t0 - t_retrieval
        seconds["mesh"] += t2 - t1
        for k, shape in enumerate(batch):
            sid = shape.key.id
            entry = {
                "status": "ok", "class": shape.key.cls, "loss": float(result.losses[k]), "data_loss": float(result.data_losses[k]),
                "initial_loss": float(result.history[0, k]), "steps": int(result.steps[k]), "in_training_set": sid in training,
                **({"retrieved": model.ids[int(index[k])]} if index is not None else {}),
            }  # fmt: skip
            if isinstance(meshes[k], EmptyLevelSet):
                entry.update(status="no_surface", reason=str(meshes[k]))
                tqdm.write(f"reconstruct: {sid}: {meshes[k]}")
            else:
                norm = read_normalization(layout.normalization(shape.key)) if cfg.frame == "source" else None
                mesh, entry["cleaned"] = cleaned[k]
                entry["mesh"] = str(write_mesh(mesh, out / f"{sid}.ply", norm))
            report["shapes"][sid] = entry
            names.append(sid)
            codes.append(result.codes[k].cpu().numpy())
            if index is not None:
                retrieved[sid] = int(index[k])
    if not shapes:
        write_json(out / "reconstruction.json", report)
        raise DatasetError(f"{cfg.data}: no test shape could be read ({'; '.join(report['failed'].values())})")
    write_latents(out / "latents.npz", names, np.stack(codes))
    count = len(shapes)
    report["seconds_per_shape"] = {"fit": seconds["fit"] / count, "mesh": seconds["mesh"] / count, "total": (seconds["fit"] + seconds["mesh"]) / count}
    report["seconds"] = seconds
    if cfg.evaluate:
        try:
            report["methods"] = _score_all(cfg, model, layout, shapes, report, retrieved, out)
        except DatasetError as e:  # e.g. no SurfaceSamples/: the meshes and codes stand, unscored
            report["not_scored"] = str(e)
            tqdm.write(f"reconstruct: not scored: {e}")
        else:
            _write_csv(out / "reconstruction.csv", report["methods"])
    write_json(out / "reconstruction.json", report)
    return report


def _score_all(cfg: ReconstructConfig, model: TrainedModel, layout: DatasetLayout, shapes: list[_Shape], report: dict, retrieved: dict[str, int], out: Path) -> dict:
    """``{method: {frame: {"shapes": {id: metrics}, "median": ..., "mean": ..., "missing": {id: why}}}}``."""
    source = GroundTruthSource(layout.root, "data")
    eval_cfg = {frame: EvalConfig(frame=frame, num_points=cfg.num_points, seed=cfg.fit.seed, iou_points=cfg.iou_points) for frame in FRAMES}
    methods = ("ours",) + (METHODS[1:] if cfg.references else ())
    rows: dict = {m: {f: {} for f in FRAMES} for m in methods}
    missing: dict = {m: {} for m in methods}
    mean_mesh, retrieval_mesh = None, {}
    if cfg.references:
        mean_mesh, retrieval_mesh = write_reference_meshes(model, {s.key.id: retrieved[s.key.id] for s in shapes}, cfg.mesh, out)
        if isinstance(mean_mesh, EmptyLevelSet):
            missing["mean_shape"] = {s.key.id: f"the zero code has {mean_mesh}" for s in shapes}
            mean_mesh = None
        oracle = TrainingSurfaces(model)
    for shape in tqdm(shapes, desc="score", unit="shape", disable=not cfg.progress):
        sid = shape.key.id
        if sid not in source.ids:
            for m in methods:
                missing[m][sid] = f"{layout.root}: no surface samples for {sid} (SurfaceSamples/)"
            continue
        gt = source.load(sid)
        candidates: dict[str, trimesh.Trimesh | None] = {"ours": None}
        entry = report["shapes"][sid]
        if entry["status"] == "ok":
            candidates["ours"] = trimesh.load(entry["mesh"], force="mesh", process=False)
        else:
            missing["ours"][sid] = entry["reason"]
        if cfg.references:
            candidates["mean_shape"] = mean_mesh
            found = retrieval_mesh[sid]
            if isinstance(found, EmptyLevelSet):
                missing["retrieval"][sid] = f"retrieved code {model.ids[retrieved[sid]]}: {found}"
            else:
                candidates["retrieval"] = found
        for method, mesh in candidates.items():
            if mesh is None:
                continue
            frame_of_mesh = cfg.frame if method == "ours" else "normalized"
            for frame in FRAMES:
                rows[method][frame][sid] = score_mesh(mesh, frame_of_mesh, gt, eval_cfg[frame])
        if cfg.references:
            best = oracle.nearest(gt, cfg.num_points, cfg.fit.seed)
            if isinstance(best, str):
                missing["oracle"][sid] = best
            else:
                name, by_frame = best
                for frame in FRAMES:
                    rows["oracle"][frame][sid] = {"training_shape": name, **by_frame[frame]}
    summary = {}
    for m in methods:
        summary[m] = {"missing": missing[m]}
        for frame in FRAMES:
            summary[m][frame] = {"median": _aggregate(rows[m][frame], statistics.median), "mean": _aggregate(rows[m][frame], np.mean), "shapes": rows[m][frame]}
    return summary


def _aggregate(rows: dict[str, dict], how) -> dict:
    names = sorted({k for r in rows.values() for k, v in r.items() if isinstance(v, float)})
    return {n: float(how([r[n] for r in rows.values() if isinstance(r.get(n), float) and np.isfinite(r[n])])) for n in names if any(isinstance(r.get(n), float) for r in rows.values())}


def _write_csv(path: Path, methods: dict) -> None:
    """One row per (shape, method): the headline metrics in both frames; then median and mean rows per method."""
    header = ["shape", "method", *[f"{m}.{f}" for f in FRAMES for m in HEADLINE]]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for method, entry in methods.items():
        ids = sorted(set(entry["normalized"]["shapes"]) | set(entry["source"]["shapes"]))
        for label, pick in [*((i, lambda f, i=i: entry[f]["shapes"].get(i, {})) for i in ids), ("median", lambda f: entry[f]["median"]), ("mean", lambda f: entry[f]["mean"])]:
            writer.writerow([label, method, *[repr(pick(f)[m]) if m in pick(f) else "" for f in FRAMES for m in HEADLINE]])
    atomic_write_bytes(path, lambda f: f.write(text.getvalue().encode()))


def brief(report: dict, frame: str = "normalized") -> dict:
    """Medians of the headline metrics per method in ``frame``, and seconds per shape: a summary row set."""
    methods = report.get("methods", {})
    return {
        "seconds_per_shape": report.get("seconds_per_shape"),
        **{m: {k: methods[m][frame]["median"].get(k) for k in ("chamfer", "fscore@1%", "fscore@2%", "normal_consistency")} for m in methods},
    }


