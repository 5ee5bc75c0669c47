"""The study's further experiments, one function each, ``stage(study)``: ``inference`` (what a code
costs), ``generalisation`` (trained on the digits 0-4), ``generation`` (draws from the codes'
Gaussian), ``collapse`` (uninformative inputs) and ``capacity`` (the decoder-capacity grid). What
each writes is listed in :mod:`~sdf_autodec.images.run`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace

import torch

from sdf_autodec.core.seeding import seed_global, torch_generator
from sdf_autodec.images.capacity import EncoderDecoder, make_decoder, probe_scores
from sdf_autodec.images.collapse import SOURCES, class_means, code_source, collapse_scores, input_size, train_on_codes
from sdf_autodec.images.complete import ad_decode, ae_outputs
from sdf_autodec.images.generation import gaussian_samples, load_sklearn_digits, sample_scores
from sdf_autodec.images.masks import make_mask
from sdf_autodec.images.metrics import region_mse
from sdf_autodec.images.report import image_grid, update_results
from sdf_autodec.images.study import Study, ae_codes, ae_outputs_from_codes
from sdf_autodec.images.train import fit_codes, train_autodecoder, train_autoencoder
from sdf_autodec.nn.conv import ConvAutoencoder, ConvNetConfig, CoordConvDecoder


def inference(study: Study) -> None:
    """What a code costs (``inference_cost``): AE encoding against AD fitting, in milliseconds per
    test image on this machine, and the AD's hidden-pixel MSE on ``cost_mask`` against iterations
    (the AE's, fed the masked image, beside it)."""
    cfg, test = study.cfg, study.splits.test
    ae, (decoder, _) = study.load_ae("ae"), study.load_ad()
    masks = make_mask(cfg.cost_mask, len(test), cfg.net.image_size, torch_generator(cfg.seed, "test-masks", cfg.cost_mask))
    hidden = 1.0 - masks
    t0 = time.perf_counter()
    codes = ae_codes(ae, test.images)
    encode_ms = 1000 * (time.perf_counter() - t0) / len(test)
    ae_mse = region_mse(ae_outputs(ae, test.images * masks), test.images, hidden).mean().item()
    rows = []
    for iterations in cfg.cost_iterations:
        fit = replace(cfg.fit, iterations=iterations)
        t0 = time.perf_counter()
        fitted, _ = fit_codes(decoder, test.images, masks, cfg.net.latent_size, fit, cfg.fit_batch_size)
        ms = 1000 * (time.perf_counter() - t0) / len(test)
        rows.append({"iterations": iterations, "ms_per_image": ms, "mse_hidden": region_mse(ad_decode(decoder, fitted), test.images, hidden).mean().item()})
    update_results(study.results, {"inference_cost": {
        "mask": cfg.cost_mask, "device": str(study.device), "threads": torch.get_num_threads(), "images": len(test), "batch": cfg.fit_batch_size,
        "ae": {"ms_per_image": encode_ms, "mse_hidden": ae_mse, "codes": int(codes.shape[0])}, "ad": rows,
    }})


def generalisation(study: Study) -> None:
    """Both models trained on the digits 0-4, scored in and out of distribution (``images.generation``)."""
    cfg, train, val, test = study.cfg, study.splits.train, study.splits.val, study.splits.test
    low, low_val = train.labels < 5, val.labels < 5
    sets = {"test_digits_0-4": test.images[test.labels < 5], "test_digits_5-9": test.images[test.labels >= 5],
            "sklearn_digits_8x8": load_sklearn_digits(cfg.net.image_size).images}
    seed_global(cfg.seed, "ae_digits0-4", "init")
    ae = ConvAutoencoder(cfg.net).to(study.device)
    ae_run = train_autoencoder(ae, train.images[low], val.images[low_val], cfg.ae, cfg.seed, name="ae_digits0-4", progress=cfg.progress)
    seed_global(cfg.seed, "ad_digits0-4", "init")
    decoder = CoordConvDecoder(cfg.net).to(study.device)
    _, ad_run = train_autodecoder(decoder, cfg.net.latent_size, train.images[low], val.images[low_val], cfg.ad, cfg.seed, progress=cfg.progress)
    scores = {"ae": {}, "ad": {}}
    for name, images in sets.items():
        scores["ae"][name] = region_mse(ae_outputs(ae, images), images).mean().item()
        codes, _ = fit_codes(decoder, images, None, cfg.net.latent_size, cfg.fit, cfg.fit_batch_size)
        scores["ad"][name] = region_mse(ad_decode(decoder, codes), images).mean().item()
    update_results(study.results, {"generalisation": {
        "mse": scores, "images": {k: len(v) for k, v in sets.items()}, "trained_on": int(low.sum()),
        "seconds": {"ae": ae_run.seconds, "ad": ad_run.seconds},
    }})


def generation(study: Study) -> None:
    """Novel images from each model's code distribution (``images.generation``)."""
    cfg, train, test = study.cfg, study.splits.train, study.splits.test
    decoder, ad_codes = study.load_ad()
    ae = study.load_ae("ae")
    train_codes = ae_codes(ae, train.images)
    classifier = study.load_classifier()
    samples = {
        "ae": ae_outputs_from_codes(ae, gaussian_samples(train_codes, cfg.generated, torch_generator(cfg.seed, "generation", "ae"))),
        "ad": ad_decode(decoder, gaussian_samples(ad_codes.cpu(), cfg.generated, torch_generator(cfg.seed, "generation", "ad"))),
    }
    scores = {name: sample_scores(images, classifier, train.images) for name, images in samples.items()}
    scores["test_images"] = sample_scores(test.images, classifier, train.images)  # the reference: real, unseen digits
    shown = min(8, cfg.generated)
    image_grid(study.out / "generation.png", [(f"{name.upper()} sample {i + 1}", images[i * shown : (i + 1) * shown], None)
                                             for name, images in samples.items() for i in range(min(4, cfg.generated // shown))],
               title="decoded draws from a Gaussian fitted to the training codes (columns of 8)")
    update_results(study.results, {"generation": {"scores": scores, "samples": cfg.generated}})


def collapse(study: Study) -> None:
    """The collapse table (``images.collapse``): per row, scores on the training and test images."""
    cfg, train, test = study.cfg, study.splits.train, study.splits.test
    d, size = cfg.net.latent_size, cfg.net.image_size
    global_mean, by_class = train.images.mean(0, keepdim=True), class_means(train.images, train.labels)

    def scored(on_train: torch.Tensor, on_test: torch.Tensor) -> dict:
        return {"train": collapse_scores(on_train, train.images, train.labels, global_mean, by_class),
                "test": collapse_scores(on_test, test.images, test.labels, global_mean, by_class)}

    rows, seconds = {}, {}
    ae = study.load_ae("ae")
    rows["ae"] = scored(ae_outputs(ae, train.images), ae_outputs(ae, test.images))
    seed_global(cfg.seed, "ae_zero_input", "init")
    blind = ConvAutoencoder(cfg.net).to(study.device)
    result = train_autoencoder(blind, train.images, study.splits.val.images, cfg.ae, cfg.seed, name="ae_zero_input",
                               input_masks=lambda n, g: torch.zeros(n, 1, size, size), progress=cfg.progress)
    seconds["ae_zero_input"] = result.seconds
    zeros = torch.zeros_like
    rows["ae_zero_input_on_zeros"] = scored(ae_outputs(blind, zeros(train.images)), ae_outputs(blind, zeros(test.images)))
    rows["ae_zero_input_on_images"] = scored(ae_outputs(blind, train.images), ae_outputs(blind, test.images))
    everyone = torch.arange(len(train))
    for kind in SOURCES:
        seed_global(cfg.seed, "collapse", kind, "init")
        decoder = CoordConvDecoder(replace(cfg.net, latent_size=input_size(kind, d))).to(study.device)
        source = code_source(kind, d, train.labels, cfg.ad.code_init_std, cfg.seed)
        seconds[kind] = train_on_codes(decoder, train.images, source, cfg.collapse, cfg.seed, kind, cfg.progress)["seconds"]
        g = torch_generator(cfg.seed, "collapse", kind, "eval")
        on_train = ad_decode(decoder, source(everyone, g))
        if kind == "onehot_noise":  # its test input is what it was trained on: the true label and fresh noise
            codes = code_source(kind, d, test.labels, cfg.ad.code_init_std, cfg.seed)(torch.arange(len(test)), g)
        else:  # codes fitted to the test images with the decoder frozen, as the AD's
            codes, _ = fit_codes(decoder, test.images, None, d, cfg.fit, cfg.fit_batch_size)
        rows[kind] = scored(on_train, ad_decode(decoder, codes))
    decoder, train_codes = study.load_ad()
    rows["ad"] = scored(ad_decode(decoder, train_codes), ad_decode(decoder, study.ad_test_codes(decoder)))
    notes = {
        "ae": "the AE fed the images",
        "ae_zero_input_on_zeros": "an AE trained on all-zero inputs (targets: the images), fed zeros",
        "ae_zero_input_on_images": "the same AE fed the real images",
        "noise": "the decoder fed a fresh N(0, I) code at every step; test: codes fitted with the decoder frozen",
        "onehot_noise": "the decoder fed the one-hot digit label and fresh N(0, I) noise; test: the true label and fresh noise",
        "fixed_random": f"the decoder fed one fixed N(0, {cfg.ad.code_init_std}^2 I) code per training image, never updated; test: codes fitted with the decoder frozen",
        "ad": "the autodecoder (learned codes); test: codes fitted with the decoder frozen",
    }
    update_results(study.results, {"collapse": {"rows": rows, "notes": notes, "epochs": cfg.collapse.epochs, "seconds": seconds}})


def capacity(study: Study) -> None:
    """The decoder-capacity grid (``images.capacity``): one row per cell."""
    cfg, cap = study.cfg, study.cfg.capacity
    train, test = study.splits.train, study.splits.test
    low_train, low_val = train.labels < 5, study.splits.val.labels < 5
    high_train, high_test = torch.nonzero(train.labels >= 5).flatten()[:2000], test.labels >= 5
    cells = {}
    for latent in cap.latent_sizes:
        net = replace(cfg.net, latent_size=latent)
        for kind in cap.decoders:
            for model in ("ae", "ad"):
                name = f"{model}_{kind}_{latent}"
                t0 = time.perf_counter()
                codes_of, decode = _capacity_model(study, model, kind, net, train.images, study.splits.val.images, name)
                test_codes = codes_of(test.images, None)
                mse = region_mse(decode(test_codes), test.images).mean().item()
                cell = {"model": model, "decoder": kind, "latent_size": latent, "mse_test": mse,
                        **probe_scores(codes_of(None, "train"), train.labels, test_codes, test.labels, cap.few, cfg.seed, cfg.knn_k)}
                if cap.transfer:
                    codes_of, _ = _capacity_model(study, model, kind, net, train.images[low_train], study.splits.val.images[low_val], name + "_digits0-4")
                    unseen = probe_scores(codes_of(train.images[high_train], None), train.labels[high_train],
                                          codes_of(test.images[high_test], None), test.labels[high_test], cap.few, cfg.seed, cfg.knn_k)
                    cell["transfer_accuracy"] = unseen["probe_accuracy"]
                cell["seconds"] = time.perf_counter() - t0
                cells[name] = cell
    update_results(study.results, {"capacity": {"cells": cells, "config": asdict(cap)}})


def _capacity_model(study: Study, model: str, kind: str, net: ConvNetConfig, images: torch.Tensor, val: torch.Tensor, name: str):
    """Train one cell's model on ``images``; returns ``(codes_of, decode)``: ``codes_of(x, None)`` the
    codes of new images ``x`` (AE: encoded; AD: fitted, decoder frozen), ``codes_of(None, "train")``
    the training images' codes (AE: encoded; AD: learned); ``decode(codes)`` the images on CPU."""
    cfg, cap = study.cfg, study.cfg.capacity
    seed_global(cfg.seed, "capacity", name, "init")
    decoder = make_decoder(kind, net, cap.hidden).to(study.device)
    if model == "ae":
        ae = EncoderDecoder(net, decoder).to(study.device)
        train_autoencoder(ae, images, val, replace(cfg.ae, epochs=cap.ae_epochs), cfg.seed, name=name, progress=cfg.progress)
        ae.eval()

        def encode(x: torch.Tensor) -> torch.Tensor:
            return ae_codes(ae, x)

        return (lambda x, which: encode(images if which == "train" else x)), (lambda z: ad_decode(decoder, z))
    latents, _ = train_autodecoder(decoder, net.latent_size, images, val, replace(cfg.ad, epochs=cap.ad_epochs), cfg.seed, progress=cfg.progress)
    learned = latents.weight.detach().cpu()

    def codes_of(x: torch.Tensor | None, which: str | None) -> torch.Tensor:
        return learned if which == "train" else fit_codes(decoder, x, None, net.latent_size, cfg.fit, cfg.fit_batch_size)[0]

    return codes_of, (lambda z: ad_decode(decoder, z))
