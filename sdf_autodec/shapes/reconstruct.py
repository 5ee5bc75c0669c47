"""``sdf-autodec mesh``: the training codes of a run → one mesh per training shape, ``OUTPUT/<id>.ply``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from sdf_autodec.geometry.layout import NORM_DIR, DatasetError, read_normalization, write_json
from sdf_autodec.shapes.mesh import EmptyLevelSet, MeshConfig, extract_mesh, write_mesh
from sdf_autodec.shapes.train import load_trained


@dataclass
class MeshRunConfig:
    """Meshing of a run's training shapes."""

    run: str = ""
    """Run directory (or checkpoint file)."""
    output: str = ""
    """Folder for the meshes."""
    ids: list[str] = field(default_factory=list)
    """Shape ids to mesh (default: all training shapes)."""
    frame: str = "normalized"
    """``normalized`` (the model's unit-sphere frame) or ``source`` (each mesh's original frame; needs the run's data directory)."""
    resolution: int = 256
    """Grid samples per axis over ``[-half_size, half_size]``."""
    half_size: float = 1.0
    """Half the side of the grid's cube (see ``MeshConfig.half_size``; about 0.55 for ``unit_cube`` data)."""
    max_batch: int = 262_144
    """Decoder queries per forward pass."""
    method: str = "coarse_to_fine"
    """``coarse_to_fine`` (far fewer decoder queries, same mesh) or ``dense``."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda``."""
    progress: bool = True
    """Show a progress bar."""


def find_normalization(data_dir: str | Path, shape_id: str) -> Path:
    """``NormalizationParameters/*/*/<id>.npz`` under ``data_dir`` (exactly one must exist)."""
    found = sorted(Path(data_dir, NORM_DIR).glob(f"*/*/{shape_id}.npz"))
    if len(found) != 1:
        raise DatasetError(f"{Path(data_dir, NORM_DIR)}: {'no' if not found else 'several'} normalisation parameters for shape {shape_id!r}")
    return found[0]


def mesh_run(cfg: MeshRunConfig) -> dict:
    """Mesh the requested training shapes; returns (and writes to ``OUTPUT/meshes.json``) what was done."""
    if not cfg.run or not cfg.output:
        raise ValueError("mesh needs run=RUN_DIR output=OUT_DIR")
    if cfg.frame not in ("normalized", "source"):
        raise ValueError(f"frame must be 'normalized' or 'source', got {cfg.frame!r}")
    model = load_trained(cfg.run, cfg.device)
    wanted = cfg.ids or model.ids
    unknown = sorted(set(wanted) - set(model.ids))
    if unknown:
        raise ValueError(f"{model.checkpoint}: no training shape named {unknown[:5]}")
    out = Path(cfg.output)
    report = {}
    for shape_id in tqdm(wanted, desc="mesh", unit="shape", disable=not cfg.progress):
        norm = read_normalization(find_normalization(model.config["data"], shape_id)) if cfg.frame == "source" else None
        try:
            mesh = extract_mesh(model.decoder, model.latents[model.ids.index(shape_id)], MeshConfig(cfg.resolution, cfg.max_batch, method=cfg.method, half_size=cfg.half_size))
            report[shape_id] = {"status": "ok", "mesh": str(write_mesh(mesh, out / f"{shape_id}.ply", norm)), "faces": len(mesh.faces)}
        except EmptyLevelSet as e:
            report[shape_id] = {"status": "no_surface", "reason": str(e)}
            tqdm.write(f"{shape_id}: {e}")
    write_json(out / "meshes.json", report)
    return report
