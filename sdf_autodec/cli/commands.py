"""The pipeline's subcommands: each is a schema, a preset in conf/, and one library call."""

from __future__ import annotations

import sys

from data_prep.dvr import DvrScanConfig, export_dvr_scans
from data_prep.prep import PrepConfig, prep_dataset
from sdf_autodec.cli.app import hydra_app
from sdf_autodec.core.devices import resolve_device
from sdf_autodec.core.training import parse_budget
from sdf_autodec.shapes.complete import CompleteConfig, complete
from sdf_autodec.shapes.evaluate import EvalConfig, evaluate
from sdf_autodec.shapes.mesh_codes import MeshRunConfig, mesh_run
from sdf_autodec.shapes.pictures import RenderConfig, render_inputs
from sdf_autodec.shapes.reconstruct import ReconstructConfig, reconstruct
from sdf_autodec.shapes.report import ReportConfig, build_report
from sdf_autodec.shapes.recipes import apply_preset, budget_recipe
from sdf_autodec.shapes.train import TrainConfig, train


def run_prep(cfg: PrepConfig) -> None:
    report = prep_dataset(cfg)
    print(
        f"prep: {len(report.ok)} ok ({len(report.skipped)} already done), {len(report.rejected)} rejected, "
        f"{len(report.failed)} failed; manifest: {report.manifest}"
    )
    for reason in [*report.rejected.values(), *report.failed.values()]:
        print(f"  failed: {reason}")
    if not report.ok:
        sys.exit(1)


def given_keys() -> set[str]:
    """The config keys named on this command line (``recipe`` for ``recipe=small``, ``model``, ``lr_decoder``, ...)."""
    from hydra.core.hydra_config import HydraConfig

    return {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}


def run_train(cfg: TrainConfig) -> None:
    recipe = None
    if cfg.budget:
        parse_budget(cfg.budget)  # a bad budget is one line before anything loads
        given = given_keys()
        if "recipe" not in given:  # a budget and no recipe=: the recipe measured best for budgets on this device
            recipe = budget_recipe(resolve_device(cfg.device))
            cfg = apply_preset(cfg, recipe.name, keep=given)
            print(f"train: budget {cfg.budget}, recipe {recipe.name} ({recipe.reason})")
    model = train(cfg, recipe=None if recipe is None else recipe.as_dict())
    print(f"train: {len(model.ids)} training instances; checkpoint: {model.checkpoint}")


def run_complete(cfg: CompleteConfig) -> None:
    report = complete(cfg)
    ok = sum(1 for r in report["scans"].values() if r["status"] == "ok")
    print(f"complete: {ok}/{len(report['scans'])} scans completed; report: {cfg.output}/completion.json")
    if ok == 0:
        sys.exit(1)


def run_mesh(cfg: MeshRunConfig) -> None:
    report = mesh_run(cfg)
    ok = sum(1 for r in report.values() if r["status"] == "ok")
    print(f"mesh: {ok}/{len(report)} meshes written to {cfg.output}")


def run_eval(cfg: EvalConfig) -> None:
    result = evaluate(cfg)
    m, nan = result["mean"], float("nan")
    split = f", unobserved completion {m['unobserved.completion']:.3f}" if "unobserved.completion" in m else ""
    print(
        f"eval: {result['count']} meshes; mean chamfer x1000 {m['chamfer_x1000']:.3f}, "
        f"F@1% {m['fscore@1%']:.3f}, F@2% {m['fscore@2%']:.3f}, NC {m.get('normal_consistency', nan):.3f}, "
        f"IoU {m.get('iou', nan):.3f}, accuracy {m['mesh_accuracy']:.4f}, completion {m['mesh_completion']:.3f}{split}; "
        f"written to {cfg.output} and {result['csv']}"
    )
    for method, entry in result.get("methods", {}).items():
        if entry["count"]:
            med = entry["median"]
            print(f"  {method:<10} median chamfer x1000 {med.get('chamfer_x1000', nan):.3f}, F@1% {med.get('fscore@1%', nan):.3f} ({entry['count']} shapes)")
    for name, verdict in result.get("comparison", {}).items():
        print(f"  ours {name.replace('_', ' ')}: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in verdict.items()))


def run_reconstruct(cfg: ReconstructConfig) -> None:
    report = reconstruct(cfg)
    ok = sum(1 for r in report["shapes"].values() if r["status"] == "ok")
    t = report["seconds_per_shape"]
    print(f"reconstruct: {ok}/{len(report['shapes']) + len(report['failed'])} shapes meshed in {cfg.output}; {t['fit']:.1f} s fitting + {t['mesh']:.1f} s meshing per shape")
    for sid, reason in report["failed"].items():
        print(f"  failed: {reason}")
    for method, entry in report.get("methods", {}).items():
        m, s = entry["normalized"]["median"], entry["source"]["median"]
        if m:
            print(
                f"  {method:<10} median chamfer {m['chamfer']:.3e} (unit sphere), {s['chamfer']:.3e} (source frame); "
                f"F@1% {m['fscore@1%']:.3f}, F@2% {m['fscore@2%']:.3f}, NC {m.get('normal_consistency', float('nan')):.3f}"
            )
    if ok == 0:
        sys.exit(1)


def run_render(cfg: RenderConfig) -> None:
    report = render_inputs(cfg)
    shapes = report["shapes"]
    ok = [n for n, r in shapes.items() if r["status"] == "ok"]
    print(f"render: {len(ok)}/{len(shapes)} pictures written to {cfg.output}")
    for name, r in shapes.items():
        for note in r.get("notes", []) + ([r["reason"]] if r["status"] != "ok" else []):
            print(f"  {name}: {note}")
    if not ok:
        sys.exit(1)


prep_main = hydra_app("prep", PrepConfig, run_prep)
train_main = hydra_app("train", TrainConfig, run_train)
complete_main = hydra_app("complete", CompleteConfig, run_complete)
mesh_main = hydra_app("mesh", MeshRunConfig, run_mesh)
reconstruct_main = hydra_app("reconstruct", ReconstructConfig, run_reconstruct)
eval_main = hydra_app("eval", EvalConfig, run_eval)
render_main = hydra_app("render", RenderConfig, run_render)


def run_report(cfg: ReportConfig) -> None:
    result = build_report(cfg)
    for what, why in result["missing"]:
        print(f"  missing: {what}: {why}")
    print(f"report: {result['shapes']} shapes, {result['bytes'] / 1e6:.2f} MB in {result['seconds']:.1f} s: {result['path']}")


report_main = hydra_app("report", ReportConfig, run_report)


def run_dvr(cfg: DvrScanConfig) -> None:
    report = export_dvr_scans(cfg)
    ok = [k for k, r in report.items() if r["status"] == "ok"]
    print(f"dvr: {len(ok)}/{len(report)} scans (views {list(cfg.views)}) written to {cfg.output}")
    for name, r in report.items():
        if r["status"] != "ok":
            print(f"  failed: {r['reason']}")
    if not ok:
        sys.exit(1)


dvr_main = hydra_app("dvr", DvrScanConfig, run_dvr)
