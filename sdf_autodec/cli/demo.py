"""``sdf-autodec demo``: the whole pipeline on the bundled procedural shapes, in a few minutes on a CPU.

generate shapes → prep (SDF samples, surface samples, one virtual scan per shape) → train the small
model on the train split → complete the scans of the held-out test shapes → reconstruct the held-out
shapes from their SDF samples (DeepSDF's protocol, with the mean-shape, retrieval and oracle rows)
→ mesh a few training shapes → evaluate against ground truth → ``OUTPUT/summary.json`` → the HTML
report ``OUTPUT/report.html`` (``shapes/report.py``), whose path is printed last.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_prep.prep import PrepConfig, prep_dataset
from data_prep.procedural import ProceduralConfig, generate_dataset
from data_prep.sampling import SampleConfig
from sdf_autodec.cli.app import hydra_app
from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.storage.layout import DatasetLayout, read_split, write_json
from sdf_autodec.shapes.complete import CompleteConfig, complete
from sdf_autodec.shapes.evaluate import EvalConfig, evaluate
from sdf_autodec.shapes.mesh import MeshConfig
from sdf_autodec.shapes.observations import ObservationConfig
from sdf_autodec.shapes.mesh_codes import MeshRunConfig, mesh_run
from sdf_autodec.shapes.reconstruct import ReconstructConfig, reconstruct
from sdf_autodec.shapes.report import ReportConfig, build_report
from sdf_autodec.shapes.train import TrainConfig, train


@dataclass
class DemoConfig:
    """The demo's sizes; each stage's full config is reachable (e.g. ``train.epochs=100``)."""

    output: str = "demo_out"
    """Folder for everything the demo writes."""
    shapes: ProceduralConfig = field(default_factory=lambda: ProceduralConfig(shapes_per_family=8))
    """The bundled procedural dataset."""
    samples: SampleConfig = field(default_factory=lambda: SampleConfig(num_samples=60_000, surface_points=30_000))
    """SDF sampling per shape."""
    test_fraction: float = 0.2
    """Held-out fraction per family, completed from its virtual scan."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Training (the preset sets the small model)."""
    fit: FitConfig = field(default_factory=lambda: FitConfig(iterations=300))
    """Latent fitting of the held-out scans."""
    observe: ObservationConfig = field(default_factory=lambda: ObservationConfig(num_surface=1000))
    """How the held-out scans become SDF observations."""
    resolution: int = 128
    """Marching-cubes grid of the completed and reconstructed meshes."""
    training_meshes: int = 4
    """Training shapes whose codes are meshed and scored (how well the model holds what it was trained on)."""
    reconstruct_samples: int = 4000
    """SDF samples per step when reconstructing the held-out shapes (started from the nearest training code)."""
    report: bool = True
    """Write ``OUTPUT/report.html`` at the end."""
    seed: int = 0
    """Seed of every stage."""


def run_demo(cfg: DemoConfig) -> dict:
    out = Path(cfg.output)
    meshes_dir, data_dir, run_dir = out / "meshes", out / "data", out / "run"
    seconds: dict[str, float] = {}

    def stage(name, fn):
        print(f"[demo] {name} ...", flush=True)
        t0 = time.perf_counter()
        result = fn()
        seconds[name] = round(time.perf_counter() - t0, 2)
        return result

    shapes = ProceduralConfig(families=list(cfg.shapes.families), shapes_per_family=cfg.shapes.shapes_per_family, seed=cfg.seed)
    stage("generate", lambda: generate_dataset(meshes_dir, shapes))
    prep_cfg = PrepConfig(input=str(meshes_dir), output=str(data_dir), dataset="procedural", samples=cfg.samples, test_fraction=cfg.test_fraction, seed=cfg.seed)
    report = stage("prep", lambda: prep_dataset(prep_cfg))
    if report.failed:
        raise RuntimeError(f"demo: prep failed for {report.failed}")
    train_cfg = cfg.train
    train_cfg.data, train_cfg.run, train_cfg.seed = str(data_dir), str(run_dir), cfg.seed
    model = stage("train", lambda: train(train_cfg))

    layout = DatasetLayout(data_dir)
    test_keys = read_split(layout.split("test"))
    scans_dir = out / "test_scans"
    scans_dir.mkdir(parents=True, exist_ok=True)
    for key in test_keys:  # the held-out shapes' first views, gathered in one folder
        target = scans_dir / layout.scan(key, 0).name
        target.unlink(missing_ok=True)
        target.symlink_to(layout.scan(key, 0).resolve())
    fit = cfg.fit
    fit.seed = cfg.seed
    complete_cfg = CompleteConfig(
        run=str(run_dir), input=str(scans_dir), output=str(out / "completed"), fit=fit, observe=cfg.observe,
        mesh=MeshConfig(resolution=cfg.resolution), batch_size=len(test_keys),
    )
    stage("complete", lambda: complete(complete_cfg))
    recon_cfg = ReconstructConfig(
        run=str(run_dir), data=str(data_dir), split="test", output=str(out / "reconstructed"), fit=fit, samples=cfg.reconstruct_samples,
        init="nearest", mesh=MeshConfig(resolution=cfg.resolution), batch_size=len(test_keys),
    )
    recon = stage("reconstruct", lambda: reconstruct(recon_cfg))
    train_ids = model.ids[: cfg.training_meshes]
    stage("mesh", lambda: mesh_run(MeshRunConfig(run=str(run_dir), output=str(out / "training_shapes"), ids=train_ids, mesh=MeshConfig(resolution=cfg.resolution))))

    def score(pred: Path, name: str) -> dict | None:
        if not any(pred.glob("*.ply")):
            print(f"[demo] no {name} mesh has a surface: nothing to score (train longer)")
            return None
        return evaluate(EvalConfig(pred=str(pred), gt=str(data_dir), output=str(out / f"metrics_{name}.json"), seed=cfg.seed, progress=False))

    completion, training_shapes = stage("eval", lambda: (score(out / "completed", "completion"), score(out / "training_shapes", "training_shapes")))
    pick = ("chamfer", "chamfer_x1000", "chamfer_l1", "fscore@1%", "fscore@2%", "normal_consistency")

    def brief(result: dict | None) -> dict:
        if result is None:
            return {"shapes": 0, **{k: None for k in pick}}
        return {"shapes": result["count"], **{k: result["mean"][k] for k in pick}, "median_chamfer": result["median"]["chamfer"]}

    def brief_recon(method: str) -> dict:
        entry = recon.get("methods", {}).get(method)
        if not entry or not entry["normalized"]["mean"]:
            return {"shapes": 0, **{k: None for k in pick}}
        m = entry["normalized"]
        return {"shapes": len(m["shapes"]), **{k: m["mean"].get(k) for k in pick}, "median_chamfer": m["median"]["chamfer"]}

    summary = {
        "completion": brief(completion),
        "reconstruction": brief_recon("ours"),
        "reconstruction_references": {m: brief_recon(m) for m in ("mean_shape", "retrieval", "oracle")},
        "reconstruction_seconds_per_shape": recon["seconds_per_shape"],
        "training_shapes": brief(training_shapes),
        "seconds": {**seconds, "total": round(sum(seconds.values()), 2)},
        "train_shapes": len(model.ids),
        "test_shapes": [k.id for k in test_keys],
        "paths": {
            "data": str(data_dir),
            "run": str(run_dir),
            "completed_meshes": str(out / "completed"),
            "reconstructed_meshes": str(out / "reconstructed"),
            "training_shape_meshes": str(out / "training_shapes"),
            "metrics": [str(out / "metrics_completion.json"), str(out / "reconstructed" / "reconstruction.json"), str(out / "metrics_training_shapes.json")],
        },
        "config": json.loads(json.dumps(asdict(cfg))),
    }
    if cfg.report:
        report_cfg = ReportConfig(
            run=str(run_dir), data=str(data_dir), eval=str(out / "metrics_completion.json") if completion else "", completed=str(out / "completed"),
            reconstructed=str(out / "reconstructed"), output=str(out / "report.html"), title="sdf-autodec demo", seed=cfg.seed,
        )
        built = stage("report", lambda: build_report(report_cfg))
        summary["seconds"] = {**seconds, "total": round(sum(seconds.values()), 2)}
        summary["paths"]["report"] = built["path"]
    write_json(out / "summary.json", summary)
    print(f"\n[demo] done in {summary['seconds']['total']:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())})")
    rows = [("completion", summary["completion"]), ("reconstruction", summary["reconstruction"])]
    rows += [(f"  vs {m}", r) for m, r in summary["reconstruction_references"].items()] + [("training shapes", summary["training_shapes"])]
    for name, m in rows:
        if m["shapes"]:
            print(
                f"  {name} ({m['shapes']} shapes): chamfer {m['chamfer']:.5f} (x1000: {m['chamfer_x1000']:.2f}), "
                f"F@1% {m['fscore@1%']:.3f}, F@2% {m['fscore@2%']:.3f}, NC {m['normal_consistency']:.3f}"
            )
    print(f"  meshes: {out / 'completed'}, {out / 'reconstructed'}, {out / 'training_shapes'}; summary: {out / 'summary.json'}")
    if cfg.report:
        print(f"[demo] report: {summary['paths']['report']}")
    return summary


demo_main = hydra_app("demo", DemoConfig, run_demo)
