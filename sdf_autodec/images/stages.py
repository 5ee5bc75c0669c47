"""The study's stages that train its models and reproduce the original experiments, one function each,
``stage(study)``: ``train-classifier``, ``train-ae``, ``train-ad`` (with the AE at the AD's wall time),
``complete``, ``interpolate`` (with the midpoint claim measured), ``tsne`` and ``report``. What each
writes is listed in :mod:`~sdf_autodec.images.run`.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from sdf_autodec.core.seeding import seed_global
from sdf_autodec.images.classifier import digit_accuracy, make_classifier, predict, train_classifier as train_digit_classifier
from sdf_autodec.images.complete import CompletionModels, ad_decode, run_experiments
from sdf_autodec.images.data import load_split
from sdf_autodec.images.latent_space import cluster_scores, tsne_embedding
from sdf_autodec.images.latent_space import interpolate as lerp_codes
from sdf_autodec.images.masks import center_square, make_mask
from sdf_autodec.images.report import (
    completion_figure,
    image_grid,
    interpolation_figure,
    loss_figure,
    progress_figure,
    read_results,
    tsne_figure,
    update_results,
    write_report,
)
from sdf_autodec.images.study import FIGURES, Study, ae_codes, ae_outputs_from_codes
from sdf_autodec.images.train import train_autodecoder, train_autoencoder
from sdf_autodec.nn.conv import ConvAutoencoder, CoordConvDecoder


def train_classifier(study: Study) -> None:
    cfg = study.cfg
    train = load_split(cfg.data_dir, "train", cfg.net.image_size, cfg.classifier.train_size, cfg.seed)
    test = load_split(cfg.data_dir, "test", cfg.net.image_size)
    seed_global(cfg.seed, "classifier", "init")
    model = make_classifier(cfg.classifier, cfg.net.image_size).to(study.device)
    result = train_digit_classifier(model, train.images, train.labels, cfg.classifier, cfg.seed, progress=cfg.progress)
    study.classifiers.save("classifier", "mnist-classifier", model, cfg.classifier.epochs, torch.zeros(0, 10), [])
    accuracy = digit_accuracy(model, test.images, test.labels)
    update_results(study.results, {"classifier": {
        "test_accuracy": accuracy, "test_images": len(test), "train_images": len(train), "epochs": cfg.classifier.epochs,
        "seconds": result["seconds"], "history": result["history"],
    }})


def train_ae(study: Study) -> None:
    cfg, train, val = study.cfg, study.splits.train.images, study.splits.val.images
    variants = [("ae", None, None)]
    variants += [(f"ae_masked_loss_center{s}", center_square(s, cfg.net.image_size), None) for s in cfg.center_sizes]
    if cfg.ae_mask_training:
        for name in [f"center{s}" for s in cfg.center_sizes] + list(cfg.extra_masks):
            variants.append((f"ae_mask_trained_{name}", None, lambda n, g, name=name: make_mask(name, n, cfg.net.image_size, g)))
    for name, loss_mask, input_masks in variants:
        seed_global(cfg.seed, name, "init")
        model = ConvAutoencoder(cfg.net).to(study.device)
        result = train_autoencoder(
            model, train, val, cfg.ae, cfg.seed, name=name, loss_mask=None if loss_mask is None else loss_mask.to(study.device),
            input_masks=input_masks, progress=cfg.progress,
        )
        study.models.save(name, "mnist-ae", model, cfg.ae.epochs, torch.zeros(0, cfg.net.latent_size), [])
        study.record_training(name, result.history, result.seconds)


def train_ad(study: Study) -> None:
    cfg = study.cfg
    seed_global(cfg.seed, "ad", "init")
    decoder = CoordConvDecoder(cfg.net).to(study.device)
    track = torch.arange(min(cfg.progress_images, len(study.splits.train)))
    latents, result = train_autodecoder(decoder, cfg.net.latent_size, study.splits.train.images, study.splits.val.images, cfg.ad, cfg.seed, track=track, progress=cfg.progress)
    study.models.save("ad", "mnist-ad", decoder, cfg.ad.epochs, latents.weight, [f"train:{int(i)}" for i in study.splits.train.index])
    study.record_training("ad", result.history, result.seconds)
    if result.snapshots:
        progress_figure(study.out / "ad_progress.png", result.snapshots, study.splits.train.images[track])
    if cfg.ae_equal_time:
        _train_ae_equal_time(study, result.seconds)


def _train_ae_equal_time(study: Study, ad_seconds: float) -> None:
    """The plain AE again, for as many epochs as fit in the AD's training time at the AE's measured
    seconds per epoch (``ae_equal_time``): the comparison at equal compute. The epoch count depends
    on this machine's timings; it is recorded in results.json (``training.ae_equal_time``)."""
    cfg = study.cfg
    ae_run = read_results(study.results).get("training", {}).get("ae")
    if not ae_run or not ae_run.get("history"):
        raise FileNotFoundError(f"{study.results}: no training record of the AE; run train-ae before train-ad for ae_equal_time")
    per_epoch = ae_run["seconds"] / len(ae_run["history"])
    epochs = max(1, round(ad_seconds / per_epoch))
    seed_global(cfg.seed, "ae_equal_time", "init")
    model = ConvAutoencoder(cfg.net).to(study.device)
    result = train_autoencoder(model, study.splits.train.images, study.splits.val.images, replace(cfg.ae, epochs=epochs), cfg.seed, name="ae_equal_time", progress=cfg.progress)
    study.models.save("ae_equal_time", "mnist-ae", model, epochs, torch.zeros(0, cfg.net.latent_size), [])
    study.record_training("ae_equal_time", result.history, result.seconds)


def complete(study: Study) -> None:
    cfg = study.cfg
    ae_mask_trained = {}
    if cfg.ae_mask_training:
        ae_mask_trained = {name: study.load_ae(f"ae_mask_trained_{name}") for name in [f"center{s}" for s in cfg.center_sizes] + list(cfg.extra_masks)}
    decoder, _ = study.load_ad()
    models = CompletionModels(
        ae=study.load_ae("ae"),
        ae_masked_loss={s: study.load_ae(f"ae_masked_loss_center{s}") for s in cfg.center_sizes},
        ae_mask_trained=ae_mask_trained,
        ad=decoder,
        latent_size=cfg.net.latent_size,
        training_images=study.splits.train.images,
        classifier=study.load_classifier(),
        ae_equal_time=study.load_ae("ae_equal_time") if cfg.ae_equal_time else None,
    )
    images = study.splits.test.images
    outcomes, full_codes = run_experiments(
        models, images, cfg.center_sizes, cfg.extra_masks, cfg.fit, cfg.seed, cfg.fit_batch_size, cfg.progress, labels=study.splits.test.labels
    )
    study.test_codes.write(study._codes_key(decoder), full_codes)
    shown = slice(0, min(cfg.examples, len(images)))
    train_shown = study.splits.train.images[: min(cfg.examples, len(study.splits.train))]
    image_grid(study.out / "ae_masked_loss_regions.png",
               [(f"centre {s} ignored", train_shown, center_square(s, cfg.net.image_size).expand_as(train_shown)) for s in cfg.center_sizes],
               title="ae_masked_loss: the loss never scores the blue square")
    for name, outcome in outcomes.items():
        completion_figure(
            study.out / f"completion_{name}.png", name, images[shown], outcome.masks[shown],
            {k: v[shown] for k, v in outcome.inputs.items()}, {k: v[shown] for k, v in outcome.outputs.items()},
        )
    parts = {"center": {str(s): outcomes[f"center{s}"].scores for s in cfg.center_sizes}, "full": outcomes["full"].scores}
    notes = {}
    for name in cfg.extra_masks:
        parts[name] = outcomes[name].scores
        notes[f"{name}.ae"] = (
            f"an AE trained on the same training images with {name} masks on its input (loss on every pixel), fed the masked test image"
            if cfg.ae_mask_training else "the AE trained normally, fed the masked test image (no AE was trained with such masks: ae_mask_training=false)"
        )
        notes[f"{name}.ae_masked_input"] = "the AE trained normally, fed the masked test image"
    notes["center.ae_masked_loss"] = "an AE trained with a loss that ignores the centre square, fed the whole test image (as in the original study)"
    if cfg.ae_equal_time:
        notes["ae_equal_time"] = "the plain AE trained for the AD's wall time (its epochs: training.ae_equal_time), fed the masked test image"
    if cfg.ae_mask_training:
        notes["ae_mask_trained"] = "an AE trained on the training images with that same mask on its input (loss on every pixel), fed the masked test image: the AD's fair rival"
    notes["mean_fill"] = "the mean training image on the hidden pixels, the visible ones as given (a trivial answer)"
    notes["retrieval"] = "the training image nearest on the visible pixels, on the hidden pixels; the visible ones as given (a trivial answer)"
    notes["digit_accuracy"] = "the fraction of completions the fixed classifier labels as the true digit (its own accuracy on real test images: 'classifier' in results.json)"
    notes["ad"] = f"codes fitted to the visible pixels only ({cfg.fit.iterations} Adam steps, {cfg.fit_batch_size} images per batch), decoder frozen"
    parts["notes"] = notes
    update_results(study.results, parts)


def interpolate(study: Study) -> None:
    cfg = study.cfg
    test = study.splits.test
    decoder, _ = study.load_ad()
    ae = study.load_ae("ae")
    ad_codes = study.ad_test_codes(decoder)
    pairs = study.pairs(cfg.interpolation_pairs)
    alphas = torch.linspace(0, 1, cfg.interpolation_steps)
    a, b = pairs[:, 0], pairs[:, 1]
    ends = torch.stack([ae_codes(ae, test.images[p]) for p in (a, b)])  # (2, P, D)
    strips, mids = {}, {}
    for name, (za, zb), decode in (("ae", ends, lambda z: ae_outputs_from_codes(ae, z)), ("ad", (ad_codes[a], ad_codes[b]), lambda z: ad_decode(decoder, z))):
        codes = lerp_codes(za, zb, alphas)  # (P, A, D)
        strips[name] = decode(codes.flatten(0, 1)).view(len(pairs), len(alphas), *test.images.shape[1:])
        mids[name] = decode(lerp_codes(za, zb, torch.tensor([0.5])).flatten(0, 1)).view(len(pairs), 1, *test.images.shape[1:])
    image_grid(
        study.out / "interpolation_midpoint.png",
        [("image A", test.images[a], None), ("AE, α=0.5", mids["ae"][:, 0], None), ("AD, α=0.5", mids["ad"][:, 0], None), ("image B", test.images[b], None)],
        title="decoded midpoint of the codes of A and B",
    )
    interpolation_figure(
        study.out / "interpolation_strip.png", strips, alphas.tolist(), "decoded (1-α)·z_A + α·z_B between test images A and B", ends=(test.images[a], test.images[b])
    )
    update_results(study.results, {"interpolation": {"pairs": [[int(test.index[i]), int(test.index[j])] for i, j in pairs.tolist()],
                                                     "digits": [[int(test.labels[i]), int(test.labels[j])] for i, j in pairs.tolist()],
                                                     "midpoint": _midpoint_claim(study, ae, decoder, ad_codes)}})


def _midpoint_claim(study: Study, ae: ConvAutoencoder, decoder: CoordConvDecoder, ad_codes: torch.Tensor) -> dict:
    """The claim "the AD's interpolation midpoint is the pixel average of the two images", tested on
    ``midpoint_pairs`` pairs of different digits: per model, the MSE of the decoded midpoint code to
    ``(x_A + x_B) / 2`` and to the nearer of ``x_A``, ``x_B``, and the classifier's confidence at α = 0.5
    (the pixel average's own confidence beside it)."""
    test = study.splits.test
    pairs = study.pairs(min(study.cfg.midpoint_pairs, len(test) // 2))
    a, b = pairs[:, 0], pairs[:, 1]
    xa, xb = test.images[a], test.images[b]
    average = (xa + xb) / 2
    classifier = study.load_classifier()

    def confidence(images: torch.Tensor) -> float:
        return predict(classifier, images).max(1).values.mean().item()

    ae_mid = ae_outputs_from_codes(ae, 0.5 * (ae_codes(ae, xa) + ae_codes(ae, xb)))
    out = {"pairs": len(pairs), "pixel_average": {"confidence": confidence(average)}}
    for name, mid in (("ae", ae_mid), ("ad", ad_decode(decoder, 0.5 * (ad_codes[a] + ad_codes[b])))):
        mid = mid.clamp(0, 1)
        nearer = torch.minimum((mid - xa).pow(2).flatten(1).mean(1), (mid - xb).pow(2).flatten(1).mean(1))
        out[name] = {"mse_to_pixel_average": (mid - average).pow(2).mean().item(), "mse_to_nearer_end": nearer.mean().item(), "confidence": confidence(mid)}
    return out


def tsne(study: Study) -> None:
    cfg, train, test = study.cfg, study.splits.train, study.splits.test
    decoder, ad_train_codes = study.load_ad()
    ae = study.load_ae("ae")
    ae_train, ae_test = ae_codes(ae, train.images), ae_codes(ae, test.images)
    ad_test = study.ad_test_codes(decoder)
    scores = {
        "ae": cluster_scores(ae_train, train.labels, ae_test, test.labels, cfg.knn_k, cfg.seed),
        "ad": cluster_scores(ad_train_codes, train.labels, ad_test, test.labels, cfg.knn_k, cfg.seed),
    }
    n = min(cfg.tsne_points, len(test))
    m = min(cfg.tsne_points, len(train))
    embeddings = {"ae": tsne_embedding(ae_test[:n], cfg.seed), "ad": tsne_embedding(ad_test[:n], cfg.seed),
                  "ad (learned training codes)": tsne_embedding(ad_train_codes[:m].cpu(), cfg.seed)}
    labels = {"ae": test.labels[:n].numpy(), "ad": test.labels[:n].numpy(), "ad (learned training codes)": train.labels[:m].numpy()}
    tsne_figure(study.out / "tsne.png", embeddings, labels, {**scores, "ad (learned training codes)": {"silhouette": scores["ad"]["silhouette_train"]}})
    update_results(study.results, {"clusters": scores})


def report(study: Study) -> None:
    results = read_results(study.results)
    if results.get("training"):
        loss_figure(study.out / "loss_curves.png", results["training"])
    figures = [f for f in FIGURES if (study.out / f).is_file()]
    figures += sorted(p.name for p in study.out.glob("*.png") if p.name not in figures)
    write_report(study.out / "report.md", results, figures)
