"""``sdf-autodec complete``: partial scans → latent codes (frozen decoder, masked loss) → meshes.

Scans are processed in batches of ``batch_size``: their observations are stacked and all codes are
fitted together by the core's batched fitting. Writes, in OUTPUT::

    <scan stem>.ply                  completed mesh (normalised frame, or source frame with ``normalization=``)
    latents.npz                      names (S,), codes (S, D) (with ``adapt``, the mesh is the adapted
                                     decoder's, not the trained one's at this code)
    completion.json                  per scan: its file, final loss, data loss, points used, the retrieved
                                     training shape, mesh path or the reason it has none
    references/mean_shape.ply        the zero code's mesh            } the trivial answers (``shapes/references.py``),
    references/retrieval/<stem>.ply  the retrieved training shape's  } scored beside ours by ``eval``

Retrieval (``references``, and the start of the fit with ``init=nearest``) picks the training code
with the lowest data loss on the scan's own observations (surface points, ±η offsets, free space).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sdf_autodec.core.adaptation import AdaptConfig, adapt_decoder
from sdf_autodec.core.fitting import FitConfig, fit_latents, keyed_initial_codes, nearest_codes
from sdf_autodec.core.observations import Observations
from sdf_autodec.core.seeding import torch_generator
from sdf_autodec.storage.layout import read_normalization, write_json, write_latents
from sdf_autodec.shapes.loss import clamped_l1
from sdf_autodec.shapes.mesh import EmptyLevelSet, MeshConfig, extract_meshes, write_mesh
from sdf_autodec.shapes.observations import ObservationConfig, observe
from sdf_autodec.shapes.references import write_reference_meshes
from sdf_autodec.shapes.scans import PartialScan, ScanError, estimate_normals, find_scans, read_scan
from sdf_autodec.shapes.train import load_trained
from sdf_autodec.seeds import keyed_rng


@dataclass
class CompleteConfig:
    """Shape completion from partial scans."""

    run: str = ""
    """Run directory (or checkpoint file) of a trained model."""
    input: str = ""
    """A scan (.npz/.ply/.pcd) or a folder of them, in the model's normalised frame unless ``normalization`` is set."""
    output: str = ""
    """Folder for the completed meshes, codes and report."""
    normalization: str = ""
    """Optional NormalizationParameters npz: scans are in that shape's source frame; meshes are written back in it."""
    batch_size: int = 16
    """Scans fitted together in one batch."""
    fit: FitConfig = field(default_factory=FitConfig)
    """Latent optimisation."""
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    """After the fit, tune a copy of the decoder to each scan (``adapt.iterations > 0``; ``core.adaptation``),
    so that the observed part survives; the mesh is then the adapted decoder's."""
    observe: ObservationConfig = field(default_factory=ObservationConfig)
    """How scans become SDF observations."""
    mesh: MeshConfig = field(default_factory=lambda: MeshConfig(resolution=128))
    """Mesh extraction of the completed shapes."""
    orientation_hypotheses: bool = False
    """Scans with neither a camera nor normals: which side of a thin surface is outside cannot be
    told from the cloud alone; ``true`` fits each twice, with its estimated normals and with every
    one of them flipped, and keeps the fit with the lower data loss (``completion.json`` says which).
    Off by default: on the 20 DVR one-view tables the lower loss picked the true side for 13, the
    ``viewpoint`` normals alone for 14 (benchmarks/RESULTS.md) and the ``gravity`` ones (the default)
    for 17 (results/orientation), at twice the fitting cost."""
    clamp: float = 0.0
    """Clamp δ of the loss; 0: the checkpoint's (as in training)."""
    init: str = "random"
    """Starting code: ``random`` (``N(0, fit.init_std²)``, DeepSDF) or ``nearest`` (the retrieved training code)."""
    references: bool = True
    """Also write the mean shape's and each scan's retrieved training shape's meshes (``references/``)."""
    retrieval_probe: int = 500
    """Retrieval: every training code is tried on this many of a scan's observations, the
    ``retrieval_shortlist`` best on all of them."""
    retrieval_shortlist: int = 16
    """Codes per scan kept for the second round of retrieval."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda``."""
    progress: bool = True
    """Show a progress bar."""


def complete(cfg: CompleteConfig) -> dict:
    """Complete every scan under ``cfg.input``; returns the report written to ``completion.json``."""
    if not cfg.run or not cfg.input or not cfg.output:
        raise ValueError("complete needs run=RUN_DIR input=SCAN_OR_FOLDER output=OUT_DIR")
    if cfg.init not in ("random", "nearest"):
        raise ValueError(f"init={cfg.init!r}: choose random or nearest")
    model = load_trained(cfg.run, cfg.device)
    device = model.latents.device
    norm = read_normalization(Path(cfg.normalization)) if cfg.normalization else None
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"run": str(model.checkpoint), "config": json.loads(json.dumps(asdict(cfg))), "scans": {}}
    scans, scan_files = [], {}
    for path in find_scans(cfg.input):
        try:
            scan = read_scan(path)
        except ScanError as e:
            report["scans"][path.stem] = {"status": "failed", "reason": str(e)}
            tqdm.write(f"skipped {e}")
            continue
        if norm is not None:
            scan.points = norm.apply(scan.points)
            scan.camera_origin = None if scan.camera_origin is None else norm.apply(np.atleast_2d(scan.camera_origin)).reshape(np.shape(scan.camera_origin))
            if scan.background is not None:  # a shift and a uniform scale: the directions stay
                scan.background = np.concatenate([norm.apply(scan.background[:, :3]), scan.background[:, 3:]], axis=1)
        scans.append(scan)
        scan_files[scan.name] = str(path)
    names, codes, retrieved = [], [], {}
    clamp = cfg.clamp or float(model.config.get("clamp", 0.1))
    element_loss = lambda pred, obs: clamped_l1(pred, obs, clamp)  # noqa: E731
    batches = [scans[i : i + cfg.batch_size] for i in range(0, len(scans), cfg.batch_size)]
    for batch in tqdm(batches, desc="complete", unit="batch", disable=not cfg.progress):
        variants = _orientation_variants(batch, cfg)  # (index in batch, scan as observed, flipped)
        # every random draw is keyed by the scan's name: a scan's result does not depend on its batch
        observed = [observe(s, cfg.observe, keyed_rng(cfg.fit.seed, s.name)) for _, s, _ in variants]
        obs = _stack(observed, weighted=cfg.observe.symmetry != "none").to(device)
        of_scan: dict[int, list[int]] = {}  # scan of the batch → its variants
        for v, (i, _, _) in enumerate(variants):
            of_scan.setdefault(i, []).append(v)
        index = None
        if cfg.references or cfg.init == "nearest":
            probe = obs.subsample(cfg.retrieval_probe, torch_generator(cfg.fit.seed, "probe"))
            index, index_loss = nearest_codes(model.decoder, model.latents, obs, element_loss, probe=probe, shortlist=cfg.retrieval_shortlist, with_loss=True)
            for i, scan in enumerate(batch):  # a scan's retrieval: its best variant's
                v = min(of_scan[i], key=lambda v: float(index_loss[v]))
                retrieved[scan.name] = (int(index[v]), float(index_loss[v]))
        if cfg.init == "nearest":
            init = model.latents[index].clone()
        else:
            init = keyed_initial_codes([(cfg.fit.seed, s.name) for _, s, _ in variants], model.latent_size, cfg.fit.init_std, device)
        result = fit_latents(model.decoder, obs, element_loss, model.latent_size, cfg.fit, init=init)
        chosen = [min(of_scan[i], key=lambda v: float(result.data_losses[v])) for i in range(len(batch))]  # lowest data loss
        adapted = {}
        if cfg.adapt.iterations > 0:  # one decoder per scan: meshed one by one
            meshes = []
            for scan, v in zip(batch, chosen):
                adapted[scan.name] = adapt_decoder(
                    model.decoder, result.codes[v : v + 1], obs.select(slice(v, v + 1)), element_loss, cfg.adapt,
                    torch_generator(cfg.fit.seed, "adapt", scan.name), half_size=cfg.mesh.half_size,
                )
                meshes += extract_meshes(adapted[scan.name].decoder, result.codes[v : v + 1], cfg.mesh)
        else:
            meshes = extract_meshes(model.decoder, result.codes[chosen], cfg.mesh)  # the batch's grids decoded together
        for k, (scan, v) in enumerate(zip(batch, chosen)):
            entry = {
                "status": "ok",
                "scan": scan_files[scan.name],
                "loss": float(result.losses[v]),
                "data_loss": float(result.data_losses[v]),
                "initial_loss": float(result.history[0, v]),
                "points": int(len(scan.points)),
                "camera": scan.camera_origin is not None,
            }
            if scan.name in adapted:
                entry["adapted_data_loss"] = adapted[scan.name].data_loss_after
            if scan.dropped:
                entry["non_finite_points_dropped"] = scan.dropped
            if cfg.observe.symmetry != "none":
                entry["mirrored_dropped"] = observed[v].mirrored_dropped
            if scan.name in retrieved:
                row, loss = retrieved[scan.name]
                entry.update(retrieved=model.ids[row], retrieval_data_loss=loss)
            others = [u for u in of_scan[k] if u != v]
            if scan.camera_origin is None and scan.normals is None:
                entry["normals"] = f"estimated ({cfg.observe.orient_normals})"
                entry["normals_flipped"] = variants[v][2]
                if others:
                    entry["data_loss_other_orientation"] = float(result.data_losses[others[0]])
            if isinstance(meshes[k], EmptyLevelSet):
                entry.update(status="no_surface", reason=str(meshes[k]))
            else:
                entry["mesh"] = str(write_mesh(meshes[k], out / f"{scan.name}.ply", norm))
            report["scans"][scan.name] = entry
            names.append(scan.name)
            codes.append(result.codes[v].cpu().numpy())
    if codes:
        write_latents(out / "latents.npz", names, np.stack(codes))
    if cfg.references and retrieved:
        mean, found = write_reference_meshes(model, {name: row for name, (row, _) in retrieved.items()}, cfg.mesh, out, norm)
        report["references"] = {
            "mean_shape": str(mean) if isinstance(mean, EmptyLevelSet) else "references/mean_shape.ply",
            "retrieval_without_surface": {name: str(m) for name, m in found.items() if isinstance(m, EmptyLevelSet)},
        }
    write_json(out / "completion.json", report)
    return report


def _stack(observed: list, weighted: bool) -> Observations:
    """The observations of a batch's scans as one ``Observations`` (K instances). Scans whose
    observations differ in number (a scan with a camera has free space, one without has none) are
    padded with weight-0 elements; the weights are kept when ``weighted`` or when padding was needed."""
    n = max(len(o.targets) for o in observed)
    padded = any(len(o.targets) != n for o in observed)

    def stack(values: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.concatenate([v, np.zeros((n - len(v),) + v.shape[1:], v.dtype)]) for v in values]))

    return Observations(
        queries=stack([o.queries for o in observed]),
        targets=stack([o.targets for o in observed]),
        lower_bound=stack([o.lower_bound for o in observed]),
        weights=stack([o.weights for o in observed]) if weighted or padded else None,
    )


def _orientation_variants(batch: list[PartialScan], cfg: CompleteConfig) -> list[tuple[int, PartialScan, bool]]:
    """The scans of a batch as they will be observed: ``(index in batch, scan, normals flipped)``.
    A scan with neither camera nor normals gets its estimated normals and, with
    ``orientation_hypotheses``, a second copy with all of them flipped."""
    variants = []
    for i, scan in enumerate(batch):
        if scan.camera_origin is None and scan.normals is None:
            normals = estimate_normals(scan.points, cfg.observe.normal_knn, cfg.observe.orient_normals)
            variants.append((i, replace(scan, normals=normals), False))
            if cfg.orientation_hypotheses:
                variants.append((i, replace(scan, normals=-normals), True))
        else:
            variants.append((i, scan, False))
    return variants
