"""``sdf-autodec mnist``: the whole study, in stages, into one output folder.

Stages (``stages=[...]``, run in this order; a later stage loads what an earlier run wrote)::

    train-classifier  the fixed digit classifier (``images.classifier``) on MNIST's training images
                 → DIR/models/classifier.pt; results.json: classifier (its accuracy on the 10 000 test images)
    train-ae     the AE; one AE per centre square trained with a loss that ignores it; one AE per
                 mask (each centre square, random50, top_half) trained with such masks on its input
                 → DIR/models/ae*.pt
    train-ad     the autodecoder (decoder + one code per training image)
                 → DIR/models/ad.pt, DIR/ad_progress.png
    complete     the masked experiments on the test images (AD codes fitted in batches), beside the
                 mask-trained AEs and the trivial answers (mean fill, retrieval), each scored on
                 hidden-pixel MSE and the classifier's digit accuracy
                 → results.json: center, random50, top_half, full; DIR/completion_<mask>.png;
                   DIR/models/ad_test_codes.pt (the AD's codes of the unmasked test images)
    interpolate  linear interpolation between pairs of test images in both latent spaces
                 → DIR/interpolation_midpoint.png, DIR/interpolation_strip.png
    tsne         t-SNE maps of both latent spaces, k-NN accuracy and silhouette by digit
                 → results.json: clusters; DIR/tsne.png
    inference    what a code costs: milliseconds per image for AE encoding and for AD fitting, and the
                 AD's hidden-pixel MSE against fitting iterations → results.json: inference_cost
    generalisation  an AE and an AD trained on the digits 0-4 only, scored on test digits 0-4, 5-9 and
                 scikit-learn's upscaled 8 x 8 digits (``images.generation``) → results.json: generalisation
    generation   codes drawn from a Gaussian fitted to each model's training codes, decoded and judged by
                 the classifier and by their distance to the training images → results.json: generation;
                 DIR/generation.png
    collapse     the same decoder fed uninformative codes (fresh noise, a label plus noise, fixed
                 random codes) and an AE fed zeros, beside the AE and the AD (``images.collapse``)
                 → results.json: collapse
    report       → DIR/loss_curves.png, DIR/report.md

Not run unless named (``stages=[...,capacity,...]``; their cost is their own)::

    capacity     decoders {linear, mlp, conv, conv_wide} × {AE, AD} × latent sizes, each cell trained
                 on all digits (and on 0-4 for the transfer probe); probes on the codes (``images.capacity``)
                 → results.json: capacity

Every stage records its wall time in ``results.json["seconds"]``. The configuration and the shared
state are :mod:`~sdf_autodec.images.study`'s; the stages' bodies live in
:mod:`~sdf_autodec.images.stages` (the original study) and :mod:`~sdf_autodec.images.experiments`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from sdf_autodec.images import experiments, stages
from sdf_autodec.images.report import read_results, update_results, write_report
from sdf_autodec.images.seeds import aggregate
from sdf_autodec.images.study import DEFAULT_STAGES, FIGURES, STAGES, MnistConfig, Study, validate

__all__ = ["DEFAULT_STAGES", "FIGURES", "STAGES", "MnistConfig", "Study", "run_mnist", "validate"]

ACTIONS = {
    "train-classifier": stages.train_classifier, "train-ae": stages.train_ae, "train-ad": stages.train_ad, "complete": stages.complete,
    "interpolate": stages.interpolate, "tsne": stages.tsne, "inference": experiments.inference, "generalisation": experiments.generalisation,
    "generation": experiments.generation, "collapse": experiments.collapse, "capacity": experiments.capacity, "report": stages.report,
}
"""Stage name → its function of the study."""
assert set(ACTIONS) == set(STAGES)


def run_mnist(cfg: MnistConfig) -> dict:
    """Run ``cfg.stages`` (see module docstring); returns the contents of ``results.json``. With
    ``seeds``, the whole study once per seed into ``DIR/seed_<s>/``, then ``DIR/results.json`` and
    ``DIR/report.md`` over all of them (``images.seeds``: each figure as mean, std and runs)."""
    validate(cfg)
    if cfg.seeds:
        return _run_seeds(cfg)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    study = Study(cfg)
    study.out.mkdir(parents=True, exist_ok=True)
    update_results(study.results, {"config": asdict(cfg)})
    for stage in STAGES:
        if stage not in cfg.stages:
            continue
        if cfg.progress:
            print(f"[mnist] {stage} ...", flush=True)
        t0 = time.perf_counter()
        ACTIONS[stage](study)
        seconds = read_results(study.results).get("seconds", {})
        seconds[stage] = round(time.perf_counter() - t0, 2)
        seconds["total"] = round(sum(v for k, v in seconds.items() if k != "total"), 2)
        update_results(study.results, {"seconds": seconds})
    if "report" in cfg.stages:  # the report's own time is known only now: write it again with it
        stages.report(study)
    return read_results(study.results)


def _run_seeds(cfg: MnistConfig) -> dict:
    out = Path(cfg.output)
    runs = [run_mnist(replace(cfg, seed=s, seeds=[], output=str(out / f"seed_{s}"))) for s in cfg.seeds]
    merged = {"seeds": list(cfg.seeds), **aggregate(runs)}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    if path.is_file():
        path.unlink()  # the merged run replaces whatever a single-seed run left there
    results = update_results(path, merged)
    if "report" in cfg.stages:
        first = out / f"seed_{cfg.seeds[0]}"
        figures = [f"{first.name}/{f}" for f in FIGURES if (first / f).is_file()]
        write_report(out / "report.md", results, figures)
    return results
