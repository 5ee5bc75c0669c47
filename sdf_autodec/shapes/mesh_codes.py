"""``sdf-autodec mesh``: the training codes of a run (or codes fitted by ``complete``) → one mesh per
shape, ``OUTPUT/<id>.ply``, in batches of shapes decoded together, with a progress bar."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from sdf_autodec.storage.layout import DatasetLayout, read_normalization, write_json
from sdf_autodec.storage.layout import read_latents as read_latents_file
from sdf_autodec.shapes.mesh import EmptyLevelSet, MeshConfig, extract_meshes, write_mesh
from sdf_autodec.shapes.train import load_trained


@dataclass
class MeshRunConfig:
    """Meshing of a run's training shapes, or of fitted codes."""

    run: str = ""
    """Run directory (or checkpoint file)."""
    output: str = ""
    """Folder for the meshes."""
    ids: list[str] = field(default_factory=list)
    """Shape ids to mesh (default: all training shapes, or all codes of ``latents``)."""
    latents: str = ""
    """Mesh fitted codes instead of training shapes: a ``latents.npz`` written by ``complete`` (names,
    codes), or a folder searched for them (normalised frame only)."""
    batch_size: int = 8
    """Shapes whose grids are decoded together (coarse-to-fine); memory grows by one R³ float grid per shape."""
    frame: str = "normalized"
    """``normalized`` (the model's unit-sphere frame) or ``source`` (each mesh's original frame; needs the run's data directory)."""
    mesh: MeshConfig = field(default_factory=MeshConfig)
    """Mesh extraction (``mesh.resolution``: 256 by default; ``mesh.half_size`` about 0.55 for ``unit_cube`` data),
    nested as in ``complete`` and ``reconstruct``."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda``."""
    progress: bool = True
    """Show a progress bar."""


def mesh_run(cfg: MeshRunConfig) -> dict:
    """Mesh the requested training shapes; returns (and writes to ``OUTPUT/meshes.json``) what was done."""
    if not cfg.run or not cfg.output:
        raise ValueError("mesh needs run=RUN_DIR output=OUT_DIR")
    if cfg.frame not in ("normalized", "source"):
        raise ValueError(f"frame must be 'normalized' or 'source', got {cfg.frame!r}")
    model = load_trained(cfg.run, cfg.device)
    if cfg.latents:
        if cfg.frame != "normalized":
            raise ValueError("latents= meshes are written in the normalised frame (frame=normalized)")
        names, table = read_latents(Path(cfg.latents), model.latent_size)
    else:
        names, table = list(model.ids), model.latents
    wanted = cfg.ids or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"{cfg.latents or model.checkpoint}: no {'code' if cfg.latents else 'training shape'} named {unknown[:5]}")
    out = Path(cfg.output)
    mesh_cfg = cfg.mesh
    report = {}
    batches = [wanted[i : i + max(1, cfg.batch_size)] for i in range(0, len(wanted), max(1, cfg.batch_size))]
    with tqdm(total=len(wanted), desc="mesh", unit="shape", disable=not cfg.progress) as bar:
        for batch in batches:
            codes = torch.stack([table[names.index(n)] for n in batch]).to(model.latents.device)
            for shape_id, mesh in zip(batch, extract_meshes(model.decoder, codes, mesh_cfg)):
                if isinstance(mesh, EmptyLevelSet):
                    report[shape_id] = {"status": "no_surface", "reason": str(mesh)}
                    tqdm.write(f"{shape_id}: {mesh}")
                else:
                    norm = read_normalization(DatasetLayout(model.config["data"]).find_normalization(shape_id)) if cfg.frame == "source" else None
                    report[shape_id] = {"status": "ok", "mesh": str(write_mesh(mesh, out / f"{shape_id}.ply", norm)), "faces": len(mesh.faces)}
                bar.update(1)
    write_json(out / "meshes.json", report)
    return report


def read_latents(path: Path, latent_size: int) -> tuple[list[str], torch.Tensor]:
    """Names and codes ``(S, D)`` of a ``latents.npz`` (or of every one under a folder, in path order)."""
    files = sorted(path.rglob("latents.npz")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise FileNotFoundError(f"{path}: no latents.npz found")
    names, codes = [], []
    for f in files:
        n, c = read_latents_file(f)
        if c.shape[1] != latent_size:
            raise ValueError(f"{f}: codes have shape {c.shape}, expected ({len(n)}, {latent_size}) for this model")
        names += n
        codes.append(torch.from_numpy(c))
    return names, torch.cat(codes)
