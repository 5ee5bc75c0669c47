"""Shared fixtures: a tiny prepared data directory and a tiny trained run, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import trimesh

from data_prep.prep import PrepConfig, prep_dataset
from data_prep.sampling import SampleConfig
from sdf_autodec.nn.mlp import DecoderConfig
from sdf_autodec.shapes.train import TrainConfig

# Tiny tensors gain nothing from two threads, and OpenMP's spinning barriers make them 10x slower
# whenever another process holds a core: keep the suite's timing independent of its neighbours.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_MODEL = DecoderConfig(latent_size=8, depth=3, width=32, skip_layers=[2], dropout=0.0)


def tiny_train_config(data: Path, run: Path, **overrides) -> TrainConfig:
    cfg = TrainConfig(
        data=str(data), run=str(run), model=TINY_MODEL, epochs=4, scenes_per_batch=2, samples_per_scene=256,
        checkpoint_every=2, code_reg_rampup_epochs=2, progress=False,
    )
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture(scope="session")
def mesh_dir(tmp_path_factory) -> Path:
    """Four watertight meshes in two class folders."""
    root = tmp_path_factory.mktemp("meshes")
    (root / "round").mkdir()
    (root / "boxy").mkdir()
    trimesh.creation.icosphere(subdivisions=3, radius=0.7).export(root / "round" / "ball.ply")
    trimesh.creation.capsule(height=1.0, radius=0.3).export(root / "round" / "pill.obj")
    trimesh.creation.box((1.0, 0.5, 0.3)).export(root / "boxy" / "brick.off")
    trimesh.creation.box((0.4, 0.4, 1.2)).export(root / "boxy" / "post.stl")
    return root


@pytest.fixture(scope="session")
def data_dir(mesh_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    cfg = PrepConfig(input=str(mesh_dir), output=str(out), dataset="tiny", samples=SampleConfig(num_samples=4000, surface_points=2000), test_fraction=0.5, workers=1)
    report = prep_dataset(cfg)
    assert not report.failed and len(report.ok) == 4
    return out


@pytest.fixture(scope="session")
def trained_run(data_dir, tmp_path_factory) -> Path:
    from sdf_autodec.shapes.train import train

    run = tmp_path_factory.mktemp("run")
    train(tiny_train_config(data_dir, run, epochs=40, samples_per_scene=512, lr_decoder=3e-3, lr_codes=3e-3))
    return run


@pytest.fixture(scope="session")
def recon_run(data_dir, tmp_path_factory) -> Path:
    """The tiny model trained on all four analytic shapes long enough for each to have a surface."""
    from sdf_autodec.shapes.train import train

    run = tmp_path_factory.mktemp("recon_run")
    train(tiny_train_config(data_dir, run, split="all", epochs=300, samples_per_scene=512, lr_decoder=3e-3, lr_codes=3e-3, lr_halve_every=150, checkpoint_every=1000))
    return run


TINY_DEMO = (
    "shapes.shapes_per_family=2", "shapes.families=[chair,table]", "samples.num_samples=3000", "samples.surface_points=2000",
    "train.epochs=30", "train.samples_per_scene=512", "fit.iterations=10", "observe.num_surface=200", "resolution=24",
    "training_meshes=1", "reconstruct_samples=500",
)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo's command line on tiny settings, run once: ``(output folder, CompletedProcess)``."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run([sys.executable, "-m", "sdf_autodec.cli.main", "demo", f"output={out}", *TINY_DEMO], capture_output=True, text=True, timeout=400)
    return out, proc
