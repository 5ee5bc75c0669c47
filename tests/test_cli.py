"""The command line: presets compose, help works, bad input gives one clear line and a non-zero exit."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sdf_autodec.cli.commands  # noqa: F401  (registers the schemas)
import sdf_autodec.cli.demo  # noqa: F401
import sdf_autodec.cli.mnist  # noqa: F401
from sdf_autodec.cli.main import COMMANDS
from sdf_autodec.shapes.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "sdf_autodec.cli.main", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_config_composes_to_its_schema(command):
    with initialize_config_module(config_module="sdf_autodec.conf", version_base=None):
        cfg = compose(config_name=command)
    OmegaConf.to_object(cfg)  # type-checks every field against the dataclass


@pytest.mark.parametrize("preset", ["deepsdf", "small"])
def test_recipes_compose(preset):
    with initialize_config_module(config_module="sdf_autodec.conf", version_base=None):
        cfg = OmegaConf.to_object(compose(config_name="train", overrides=[f"recipe={preset}", "epochs=7"]))
    assert isinstance(cfg, TrainConfig) and cfg.epochs == 7
    if preset == "deepsdf":
        assert (cfg.model.depth, cfg.model.width, cfg.model.latent_size, cfg.model.skip_layers) == (8, 512, 256, [4])
        assert cfg.model.dropout == 0.2 and cfg.model.weight_norm and cfg.samples_per_scene == 16384
        assert (cfg.lr_decoder, cfg.lr_codes, cfg.lr_halve_every, cfg.clamp) == (5e-4, 1e-3, 500, 0.1)
    else:
        assert cfg.model.width < 512


RECIPES = sorted(p.stem for p in (REPO / "conf" / "recipe").glob("*.yaml"))
MODELS = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_composes_as_the_budget_code_reads_it(recipe):
    """Hydra's composition of ``recipe=NAME`` and shapes.recipes' own reading of the file (what a
    budget run applies) agree on every field; and the recipe names its decoder."""
    from sdf_autodec.shapes.recipes import apply_preset

    with initialize_config_module(config_module="sdf_autodec.conf", version_base=None):
        composed = OmegaConf.to_object(compose(config_name="train", overrides=[f"recipe={recipe}", "data=d", "run=r"]))
    assert composed == apply_preset(TrainConfig(data="d", run="r"), recipe)


@pytest.mark.parametrize("model", MODELS)
def test_model_group_holds_architectures_only(model):
    """``conf/model/`` sets decoder fields and nothing else; ``model=NAME`` swaps the decoder and
    keeps the recipe's training settings."""
    with initialize_config_module(config_module="sdf_autodec.conf", version_base=None):
        base = OmegaConf.to_object(compose(config_name="train", overrides=["recipe=small"]))
        swapped = OmegaConf.to_object(compose(config_name="train", overrides=["recipe=small", f"model={model}"]))
    raw = OmegaConf.load(REPO / "conf" / "model" / f"{model}.yaml")
    assert set(raw) - {"defaults"} <= set(OmegaConf.structured(base.model))
    assert (swapped.epochs, swapped.lr_decoder, swapped.scenes_per_batch) == (base.epochs, base.lr_decoder, base.scenes_per_batch)


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in REPO.glob("sdf_autodec/**/__init__.py")}
    found |= {"data_prep"}
    assert found - {"sdf_autodec.conf"} <= listed and "sdf_autodec.conf" in listed


def test_top_level_help_lists_the_commands():
    out = cli("--help")
    assert out.returncode == 0
    for name in ("prep", "train", "complete", "mesh", "eval", "demo"):
        assert f"  {name}" in out.stdout


def test_command_help_shows_its_config():
    out = cli("train", "--help")
    assert out.returncode == 0 and "samples_per_scene" in out.stdout and "budget:" in out.stdout
    assert "model: deepsdf, medium, schema, small, tcnn, tcnn_hashgrid" in out.stdout
    assert "recipe: budget_cpu, completion, deepsdf, small, tcnn, tcnn_hashgrid" in out.stdout


def test_missing_data_directory_is_one_line(tmp_path):
    out = cli("train", f"data={tmp_path / 'absent'}", f"run={tmp_path / 'run'}", "recipe=small")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "absent: data directory not found" in out.stderr


def test_truncated_checkpoint_is_one_line(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "latest.pt").write_bytes(b"PK\x03\x04 truncated")
    out = cli("mesh", f"run={tmp_path / 'run'}", f"output={tmp_path / 'out'}", "mesh.resolution=16")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert "latest.pt: not a readable checkpoint" in out.stderr


def test_prep_fails_only_when_nothing_succeeds(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.obj").write_text("nonsense\n")
    out = cli("prep", f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}", "samples.num_samples=100")
    assert out.returncode == 1 and "bad.obj" in out.stdout


def test_demo_runs_end_to_end_on_tiny_settings(demo_run):
    demo, out = demo_run
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((demo / "summary.json").read_text())
    assert summary["test_shapes"] and summary["train_shapes"] == 2
    assert set(summary["seconds"]) >= {"generate", "prep", "train", "complete", "reconstruct", "mesh", "eval", "total"}
    assert {"chamfer", "fscore@1%"} <= set(summary["completion"])
    assert summary["reconstruction"]["shapes"] == len(summary["test_shapes"])  # the held-out shapes, from their SDF samples
    assert set(summary["reconstruction_references"]) == {"mean_shape", "retrieval", "oracle"}
    assert (demo / "run" / "checkpoints" / "latest.pt").is_file()
    assert (demo / "report.html").is_file() and out.stdout.strip().splitlines()[-1] == f"[demo] report: {demo / 'report.html'}"
