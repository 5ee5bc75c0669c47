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

Every stage records its wall time in ``results.json["seconds"]``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from sdf_autodec.core.devices import resolve_device
from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.core.seeding import seed_global, torch_generator
from sdf_autodec.images.capacity import DECODERS, CapacityConfig, EncoderDecoder, make_decoder, probe_scores
from sdf_autodec.images.collapse import SOURCES, CollapseConfig, class_means, code_source, collapse_scores, input_size, train_on_codes
from sdf_autodec.images.classifier import ClassifierConfig, digit_accuracy, make_classifier, predict, train_classifier
from sdf_autodec.images.complete import CompletionModels, ad_decode, ae_outputs, run_experiments
from sdf_autodec.images.data import DataConfig, MnistSplits, load_split, load_splits
from sdf_autodec.images.generation import gaussian_samples, load_sklearn_digits, sample_scores
from sdf_autodec.images.latent_space import cluster_scores, interpolate, tsne_embedding
from sdf_autodec.images.masks import center_square, make_mask
from sdf_autodec.images.metrics import region_mse
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
from sdf_autodec.images.seeds import aggregate
from sdf_autodec.images.store import CodeCache, ModelStore, weights_digest
from sdf_autodec.images.train import ADTrainConfig, AETrainConfig, fit_codes, train_autodecoder, train_autoencoder
from sdf_autodec.nn.conv import ConvAutoencoder, ConvNetConfig, CoordConvDecoder

STAGES = ("train-classifier", "train-ae", "train-ad", "complete", "interpolate", "tsne", "inference", "generalisation", "generation", "collapse", "capacity", "report")
DEFAULT_STAGES = tuple(s for s in STAGES if s != "capacity")
"""What ``sdf-autodec mnist`` runs when ``stages`` is not given (``capacity`` only when named)."""
FIGURES = ("loss_curves.png", "completion_center8.png", "completion_center12.png", "completion_center16.png", "completion_center20.png",
           "completion_random50.png", "completion_top_half.png", "completion_full.png", "interpolation_midpoint.png",
           "interpolation_strip.png", "tsne.png", "ad_progress.png", "generation.png", "ae_masked_loss_regions.png")


@dataclass
class MnistConfig:
    """The MNIST study: autoencoder vs autodecoder, masked completion, latent spaces."""

    output: str = "mnist_out"
    """Folder for models, figures, results.json and report.md."""
    data_dir: str = ""
    """Folder with MNIST's four IDX files (gzipped or not); required (the ``mnist`` command's preset
    points it at the workspace's ``../shared/data/mnist``)."""
    stages: list[str] = field(default_factory=lambda: list(DEFAULT_STAGES))
    """Stages to run, of: train-classifier, train-ae, train-ad, complete, interpolate, tsne, inference,
    generalisation, generation, collapse, capacity, report (run in that order; by default all but capacity)."""
    data: DataConfig = field(default_factory=DataConfig)
    """Which images: sizes of the training, validation and test subsets."""
    net: ConvNetConfig = field(default_factory=lambda: ConvNetConfig(latent_size=32, channels=[16, 32, 64]))
    """Both models' networks (the same latent size). Latent 32: a digit is its class plus a handful of
    style factors (slant, stroke width, size), and at 32 both models reconstruct held-out digits to a
    per-pixel MSE of 0.003-0.007 (measured); a smaller code is a stronger prior when a code is
    fitted to a few visible pixels, so there is no reason to go larger (not swept here)."""
    ae: AETrainConfig = field(default_factory=AETrainConfig)
    """Training of every autoencoder."""
    ad: ADTrainConfig = field(default_factory=ADTrainConfig)
    """Training of the autodecoder."""
    fit: FitConfig = field(default_factory=lambda: FitConfig(iterations=100, lr=5e-2, lr_drop_at=0.6, init_std=0.0, code_reg_weight=1e-3))
    """Fitting of the test images' codes; ``fit.code_reg_weight`` must equal ``ad.code_reg_weight``
    (one code prior for training and inference)."""
    center_sizes: list[int] = field(default_factory=lambda: [8, 12, 16, 20])
    """Sides of the hidden centre squares."""
    extra_masks: list[str] = field(default_factory=lambda: ["random50", "top_half"])
    """Further masks (randomP, top_half, left_half ...), where an AE has no natural answer."""
    ae_mask_training: bool = True
    """Train one AE per mask (each centre square and extra mask) with such masks on its input (the
    AE's fair rival to the AD there)."""
    ae_equal_time: bool = True
    """After the AD, train the plain AE again for the AD's wall time (``ae_equal_time``), so that the
    comparison is not one of unequal compute; scored on every mask (fed the masked image) and on ``full``."""
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    """The fixed digit classifier behind every ``digit_accuracy``."""
    collapse: CollapseConfig = field(default_factory=CollapseConfig)
    """The decoders of the collapse table (its AE rows train with ``ae``)."""
    generated: int = 1000
    """Codes drawn per model in the generation stage."""
    capacity: CapacityConfig = field(default_factory=CapacityConfig)
    """The decoder-capacity grid (stage ``capacity``)."""
    fit_batch_size: int = 1000
    """Test images whose codes are fitted together in one batch."""
    examples: int = 8
    """Test images shown in each completion figure."""
    interpolation_pairs: int = 4
    """Pairs of test images interpolated."""
    interpolation_steps: int = 9
    """Values of α from 0 to 1 in the strip."""
    cost_iterations: list[int] = field(default_factory=lambda: [10, 30, 100, 300])
    """Fitting iterations at which the inference stage measures the AD's hidden-pixel MSE and time."""
    cost_mask: str = "center16"
    """The mask of that measurement."""
    midpoint_pairs: int = 200
    """Pairs of test images on which the interpolation-midpoint claim is measured."""
    tsne_points: int = 1000
    """Test codes in each t-SNE map."""
    knn_k: int = 5
    """Neighbours of the k-NN classifier on the codes."""
    progress_images: int = 8
    """Training images whose reconstructions are followed across the AD's epochs."""
    seed: int = 0
    """Seed of everything (subsets, weights, batches, masks, codes, t-SNE)."""
    seeds: list[int] = field(default_factory=list)
    """Several seeds: the whole study once per seed (``DIR/seed_<s>/``), and ``DIR/results.json`` with
    every figure as ``{"mean", "std", "runs"}`` (``images.seeds``); empty: one run with ``seed``."""
    device: str = "auto"
    """``auto`` (CUDA if present, else CPU), ``cpu`` or ``cuda[:N]``."""
    threads: int = 1
    """torch CPU threads (0: torch's default). One by default: the networks are small, and on a shared
    2-core machine a second thread made training 3x slower (measured at load 4); raise it on a quiet
    many-core machine."""
    progress: bool = True
    """Progress bars."""


def validate(cfg: MnistConfig) -> None:
    """Impossible configurations fail before anything runs, with one line."""
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    if cfg.fit.code_reg_weight != cfg.ad.code_reg_weight:
        raise ValueError(
            f"fit.code_reg_weight={cfg.fit.code_reg_weight} differs from ad.code_reg_weight={cfg.ad.code_reg_weight}: "
            "the code prior must be the same at training and inference"
        )
    if cfg.data.image_size != cfg.net.image_size:
        raise ValueError(f"data.image_size={cfg.data.image_size} differs from net.image_size={cfg.net.image_size}")
    for s in cfg.center_sizes:
        center_square(s, cfg.net.image_size)  # raises when it does not fit
    for name in cfg.extra_masks:
        make_mask(name, 1, cfg.net.image_size)
    if min(cfg.examples, cfg.interpolation_pairs, cfg.interpolation_steps, cfg.midpoint_pairs, cfg.tsne_points, cfg.knn_k, cfg.fit_batch_size, cfg.progress_images) < 1:
        raise ValueError("examples, interpolation_pairs, interpolation_steps, midpoint_pairs, tsne_points, knn_k, fit_batch_size and progress_images must be >= 1")
    if cfg.classifier.epochs < 1 or cfg.classifier.batch_size < 1 or cfg.classifier.train_size < 0:
        raise ValueError(f"impossible classifier: epochs={cfg.classifier.epochs}, batch_size={cfg.classifier.batch_size}, train_size={cfg.classifier.train_size}")
    bad = [k for k in cfg.capacity.decoders if k not in DECODERS]
    if bad or min(cfg.capacity.latent_sizes, default=0) < 1 or min(cfg.capacity.ae_epochs, cfg.capacity.ad_epochs, cfg.capacity.few) < 1:
        raise ValueError(f"impossible capacity grid: decoders {cfg.capacity.decoders} (of {', '.join(DECODERS)}), latent_sizes {cfg.capacity.latent_sizes}, "
                         f"ae_epochs {cfg.capacity.ae_epochs}, ad_epochs {cfg.capacity.ad_epochs}, few {cfg.capacity.few}")
    make_mask(cfg.cost_mask, 1, cfg.net.image_size)
    if not cfg.cost_iterations or min(cfg.cost_iterations) < 1:
        raise ValueError(f"cost_iterations={cfg.cost_iterations}: give at least one positive count")
    if len(set(cfg.seeds)) != len(cfg.seeds):
        raise ValueError(f"seeds={cfg.seeds}: a seed is repeated")
    if cfg.generated < 1:
        raise ValueError(f"generated={cfg.generated}: draw at least one code")
    if cfg.collapse.epochs < 1 or cfg.collapse.batch_size < 1:
        raise ValueError(f"impossible collapse training: epochs={cfg.collapse.epochs}, batch_size={cfg.collapse.batch_size}")
    if not cfg.data_dir:
        raise ValueError("mnist needs data_dir= (the folder of MNIST's IDX files)")


class Study:
    """State shared by the stages of one run: config, data, device, paths; the models and the cache
    of test codes live in ``DIR/models`` (``images.store``)."""

    def __init__(self, cfg: MnistConfig):
        self.cfg = cfg
        self.out = Path(cfg.output)
        self.results = self.out / "results.json"
        self.device = resolve_device(cfg.device)
        self.splits: MnistSplits = load_splits(cfg.data_dir, cfg.data, cfg.seed)
        self.signature = {"net": asdict(cfg.net), "data": asdict(cfg.data), "seed": cfg.seed}
        self.models = ModelStore(self.out / "models", self.signature)
        self.test_codes = CodeCache(self.models.folder / "ad_test_codes.pt")
        self.classifiers = ModelStore(self.out / "models", {"classifier": asdict(cfg.classifier), "image_size": cfg.net.image_size, "seed": cfg.seed})
        """The classifier depends on its own recipe, not on the study's networks or subsets."""

    def load_classifier(self) -> torch.nn.Module:
        model = make_classifier(self.cfg.classifier, self.cfg.net.image_size)
        model.load_state_dict(self.classifiers.load("classifier", "mnist-classifier")["decoder"])
        return model.to(self.device).eval()

    def load_ae(self, name: str) -> ConvAutoencoder:
        model = ConvAutoencoder(self.cfg.net)
        model.load_state_dict(self.models.load(name, "mnist-ae")["decoder"])
        return model.to(self.device).eval()

    def load_ad(self) -> tuple[CoordConvDecoder, torch.Tensor]:
        ckpt = self.models.load("ad", "mnist-ad")
        decoder = CoordConvDecoder(self.cfg.net)
        decoder.load_state_dict(ckpt["decoder"])
        return decoder.to(self.device).eval(), ckpt["latents"]

    def record_training(self, name: str, history: list[dict], seconds: float) -> None:
        training = read_results(self.results).get("training", {})
        training[name] = {"history": history, "seconds": seconds}
        update_results(self.results, {"training": training})

    def _codes_key(self, decoder: CoordConvDecoder) -> str:
        """What the test codes depend on: data, network, fitting recipe, the test images and the decoder's weights."""
        test_index = hashlib.sha256(self.splits.test.index.numpy().tobytes()).hexdigest()
        return json.dumps({**self.signature, "fit": asdict(self.cfg.fit), "test_index": test_index, "decoder": weights_digest(decoder)}, sort_keys=True)

    def ad_test_codes(self, decoder: CoordConvDecoder) -> torch.Tensor:
        """The AD's codes of the unmasked test images: those written by ``complete`` when they were
        fitted the same way to the same decoder, else fitted now."""
        key = self._codes_key(decoder)
        codes = self.test_codes.read(key)
        if codes is None:
            codes, _ = fit_codes(decoder, self.splits.test.images, None, self.cfg.net.latent_size, self.cfg.fit, self.cfg.fit_batch_size)
            self.test_codes.write(key, codes)
        return codes

    # -- stages --------------------------------------------------------------------------------

    def train_classifier(self) -> None:
        cfg = self.cfg
        train = load_split(cfg.data_dir, "train", cfg.net.image_size, cfg.classifier.train_size, cfg.seed)
        test = load_split(cfg.data_dir, "test", cfg.net.image_size)
        seed_global(cfg.seed, "classifier", "init")
        model = make_classifier(cfg.classifier, cfg.net.image_size).to(self.device)
        result = train_classifier(model, train.images, train.labels, cfg.classifier, cfg.seed, progress=cfg.progress)
        self.classifiers.save("classifier", "mnist-classifier", model, cfg.classifier.epochs, torch.zeros(0, 10), [])
        accuracy = digit_accuracy(model, test.images, test.labels)
        update_results(self.results, {"classifier": {
            "test_accuracy": accuracy, "test_images": len(test), "train_images": len(train), "epochs": cfg.classifier.epochs,
            "seconds": result["seconds"], "history": result["history"],
        }})

    def train_ae(self) -> None:
        cfg, train, val = self.cfg, self.splits.train.images, self.splits.val.images
        variants = [("ae", None, None)]
        variants += [(f"ae_masked_loss_center{s}", center_square(s, cfg.net.image_size), None) for s in cfg.center_sizes]
        if cfg.ae_mask_training:
            for name in [f"center{s}" for s in cfg.center_sizes] + list(cfg.extra_masks):
                variants.append((f"ae_mask_trained_{name}", None, lambda n, g, name=name: make_mask(name, n, cfg.net.image_size, g)))
        for name, loss_mask, input_masks in variants:
            seed_global(cfg.seed, name, "init")
            model = ConvAutoencoder(cfg.net).to(self.device)
            result = train_autoencoder(
                model, train, val, cfg.ae, cfg.seed, name=name, loss_mask=None if loss_mask is None else loss_mask.to(self.device),
                input_masks=input_masks, progress=cfg.progress,
            )
            self.models.save(name, "mnist-ae", model, cfg.ae.epochs, torch.zeros(0, cfg.net.latent_size), [])
            self.record_training(name, result.history, result.seconds)

    def train_ad(self) -> None:
        cfg = self.cfg
        seed_global(cfg.seed, "ad", "init")
        decoder = CoordConvDecoder(cfg.net).to(self.device)
        track = torch.arange(min(cfg.progress_images, len(self.splits.train)))
        latents, result = train_autodecoder(decoder, cfg.net.latent_size, self.splits.train.images, self.splits.val.images, cfg.ad, cfg.seed, track=track, progress=cfg.progress)
        self.models.save("ad", "mnist-ad", decoder, cfg.ad.epochs, latents.weight, [f"train:{int(i)}" for i in self.splits.train.index])
        self.record_training("ad", result.history, result.seconds)
        if result.snapshots:
            progress_figure(self.out / "ad_progress.png", result.snapshots, self.splits.train.images[track])
        if cfg.ae_equal_time:
            self._train_ae_equal_time(result.seconds)

    def _train_ae_equal_time(self, ad_seconds: float) -> None:
        """The plain AE again, for as many epochs as fit in the AD's training time at the AE's measured
        seconds per epoch (``ae_equal_time``): the comparison at equal compute. The epoch count depends
        on this machine's timings; it is recorded in results.json (``training.ae_equal_time``)."""
        cfg = self.cfg
        ae_run = read_results(self.results).get("training", {}).get("ae")
        if not ae_run or not ae_run.get("history"):
            raise FileNotFoundError(f"{self.results}: no training record of the AE; run train-ae before train-ad for ae_equal_time")
        per_epoch = ae_run["seconds"] / len(ae_run["history"])
        epochs = max(1, round(ad_seconds / per_epoch))
        seed_global(cfg.seed, "ae_equal_time", "init")
        model = ConvAutoencoder(cfg.net).to(self.device)
        result = train_autoencoder(model, self.splits.train.images, self.splits.val.images, replace(cfg.ae, epochs=epochs), cfg.seed, name="ae_equal_time", progress=cfg.progress)
        self.models.save("ae_equal_time", "mnist-ae", model, epochs, torch.zeros(0, cfg.net.latent_size), [])
        self.record_training("ae_equal_time", result.history, result.seconds)

    def complete(self) -> None:
        cfg = self.cfg
        ae_mask_trained = {}
        if cfg.ae_mask_training:
            ae_mask_trained = {name: self.load_ae(f"ae_mask_trained_{name}") for name in [f"center{s}" for s in cfg.center_sizes] + list(cfg.extra_masks)}
        decoder, _ = self.load_ad()
        models = CompletionModels(
            ae=self.load_ae("ae"),
            ae_masked_loss={s: self.load_ae(f"ae_masked_loss_center{s}") for s in cfg.center_sizes},
            ae_mask_trained=ae_mask_trained,
            ad=decoder,
            latent_size=cfg.net.latent_size,
            training_images=self.splits.train.images,
            classifier=self.load_classifier(),
            ae_equal_time=self.load_ae("ae_equal_time") if cfg.ae_equal_time else None,
        )
        images = self.splits.test.images
        outcomes, full_codes = run_experiments(
            models, images, cfg.center_sizes, cfg.extra_masks, cfg.fit, cfg.seed, cfg.fit_batch_size, cfg.progress, labels=self.splits.test.labels
        )
        self.test_codes.write(self._codes_key(decoder), full_codes)
        shown = slice(0, min(cfg.examples, len(images)))
        train_shown = self.splits.train.images[: min(cfg.examples, len(self.splits.train))]
        image_grid(self.out / "ae_masked_loss_regions.png",
                   [(f"centre {s} ignored", train_shown, center_square(s, cfg.net.image_size).expand_as(train_shown)) for s in cfg.center_sizes],
                   title="ae_masked_loss: the loss never scores the blue square")
        for name, outcome in outcomes.items():
            completion_figure(
                self.out / f"completion_{name}.png", name, images[shown], outcome.masks[shown],
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
        update_results(self.results, parts)

    def interpolate(self) -> None:
        cfg = self.cfg
        test = self.splits.test
        decoder, _ = self.load_ad()
        ae = self.load_ae("ae")
        ad_codes = self.ad_test_codes(decoder)
        pairs = self._pairs(cfg.interpolation_pairs)
        alphas = torch.linspace(0, 1, cfg.interpolation_steps)
        a, b = pairs[:, 0], pairs[:, 1]
        with torch.no_grad():
            ae_codes = torch.cat([ae.encode(test.images[p].to(self.device)).cpu() for p in (a, b)]).view(2, len(pairs), -1)
        strips, mids = {}, {}
        for name, (za, zb), decode in (("ae", ae_codes, lambda z: ae_outputs_from_codes(ae, z)), ("ad", (ad_codes[a], ad_codes[b]), lambda z: ad_decode(decoder, z))):
            codes = interpolate(za, zb, alphas)  # (P, A, D)
            strips[name] = decode(codes.flatten(0, 1)).view(len(pairs), len(alphas), *test.images.shape[1:])
            mids[name] = decode(interpolate(za, zb, torch.tensor([0.5])).flatten(0, 1)).view(len(pairs), 1, *test.images.shape[1:])
        image_grid(
            self.out / "interpolation_midpoint.png",
            [("image A", test.images[a], None), ("AE, α=0.5", mids["ae"][:, 0], None), ("AD, α=0.5", mids["ad"][:, 0], None), ("image B", test.images[b], None)],
            title="decoded midpoint of the codes of A and B",
        )
        interpolation_figure(
            self.out / "interpolation_strip.png", strips, alphas.tolist(), "decoded (1-α)·z_A + α·z_B between test images A and B", ends=(test.images[a], test.images[b])
        )
        update_results(self.results, {"interpolation": {"pairs": [[int(test.index[i]), int(test.index[j])] for i, j in pairs.tolist()],
                                                         "digits": [[int(test.labels[i]), int(test.labels[j])] for i, j in pairs.tolist()],
                                                         "midpoint": self._midpoint_claim(ae, decoder, ad_codes)}})

    def _midpoint_claim(self, ae: ConvAutoencoder, decoder: CoordConvDecoder, ad_codes: torch.Tensor) -> dict:
        """The claim "the AD's interpolation midpoint is the pixel average of the two images", tested on
        ``midpoint_pairs`` pairs of different digits: per model, the MSE of the decoded midpoint code to
        ``(x_A + x_B) / 2`` and to the nearer of ``x_A``, ``x_B``, and the classifier's confidence at α = 0.5
        (the pixel average's own confidence beside it)."""
        test = self.splits.test
        pairs = self._pairs(min(self.cfg.midpoint_pairs, len(test) // 2))
        a, b = pairs[:, 0], pairs[:, 1]
        xa, xb = test.images[a], test.images[b]
        average = (xa + xb) / 2
        classifier = self.load_classifier()

        def confidence(images: torch.Tensor) -> float:
            return predict(classifier, images).max(1).values.mean().item()

        with torch.no_grad():
            ae_mid = ae_outputs_from_codes(ae, 0.5 * (ae.encode(xa.to(self.device)).cpu() + ae.encode(xb.to(self.device)).cpu()))
        out = {"pairs": len(pairs), "pixel_average": {"confidence": confidence(average)}}
        for name, mid in (("ae", ae_mid), ("ad", ad_decode(decoder, 0.5 * (ad_codes[a] + ad_codes[b])))):
            mid = mid.clamp(0, 1)
            nearer = torch.minimum((mid - xa).pow(2).flatten(1).mean(1), (mid - xb).pow(2).flatten(1).mean(1))
            out[name] = {"mse_to_pixel_average": (mid - average).pow(2).mean().item(), "mse_to_nearer_end": nearer.mean().item(), "confidence": confidence(mid)}
        return out

    def _pairs(self, count: int) -> torch.Tensor:
        """``(P, 2)`` indices of test images, each pair of two different digits where possible (seeded)."""
        labels = self.splits.test.labels
        order = torch.randperm(len(labels), generator=torch_generator(self.cfg.seed, "interpolation-pairs")).tolist()
        pairs, used = [], set()
        for i in order:
            if len(pairs) == count:
                break
            if i in used:
                continue
            partner = next((j for j in order if j not in used and j != i and labels[j] != labels[i]), None)
            partner = partner if partner is not None else next((j for j in order if j not in used and j != i), i)
            used |= {i, partner}
            pairs.append((i, partner))
        return torch.tensor(pairs, dtype=torch.long).view(-1, 2)

    def tsne(self) -> None:
        cfg, train, test = self.cfg, self.splits.train, self.splits.test
        decoder, ad_train_codes = self.load_ad()
        ae = self.load_ae("ae")
        with torch.no_grad():
            ae_train = torch.cat([ae.encode(train.images[i : i + 500].to(self.device)).cpu() for i in range(0, len(train), 500)])
            ae_test = torch.cat([ae.encode(test.images[i : i + 500].to(self.device)).cpu() for i in range(0, len(test), 500)])
        ad_test = self.ad_test_codes(decoder)
        scores = {
            "ae": cluster_scores(ae_train, train.labels, ae_test, test.labels, cfg.knn_k, cfg.seed),
            "ad": cluster_scores(ad_train_codes, train.labels, ad_test, test.labels, cfg.knn_k, cfg.seed),
        }
        n = min(cfg.tsne_points, len(test))
        m = min(cfg.tsne_points, len(train))
        embeddings = {"ae": tsne_embedding(ae_test[:n], cfg.seed), "ad": tsne_embedding(ad_test[:n], cfg.seed),
                      "ad (learned training codes)": tsne_embedding(ad_train_codes[:m].cpu(), cfg.seed)}
        labels = {"ae": test.labels[:n].numpy(), "ad": test.labels[:n].numpy(), "ad (learned training codes)": train.labels[:m].numpy()}
        tsne_figure(self.out / "tsne.png", embeddings, labels, {**scores, "ad (learned training codes)": {"silhouette": scores["ad"]["silhouette_train"]}})
        update_results(self.results, {"clusters": scores})

    def inference(self) -> None:
        """What a code costs (``inference_cost``): AE encoding against AD fitting, in milliseconds per
        test image on this machine, and the AD's hidden-pixel MSE on ``cost_mask`` against iterations
        (the AE's, fed the masked image, beside it)."""
        cfg, test = self.cfg, self.splits.test
        ae, (decoder, _) = self.load_ae("ae"), self.load_ad()
        masks = make_mask(cfg.cost_mask, len(test), cfg.net.image_size, torch_generator(cfg.seed, "test-masks", cfg.cost_mask))
        hidden = 1.0 - masks
        t0 = time.perf_counter()
        with torch.no_grad():
            codes = torch.cat([ae.encode(test.images[i : i + 500].to(self.device)).cpu() for i in range(0, len(test), 500)])
        encode_ms = 1000 * (time.perf_counter() - t0) / len(test)
        ae_mse = region_mse(ae_outputs(ae, test.images * masks), test.images, hidden).mean().item()
        rows = []
        for iterations in cfg.cost_iterations:
            fit = replace(cfg.fit, iterations=iterations)
            t0 = time.perf_counter()
            fitted, _ = fit_codes(decoder, test.images, masks, cfg.net.latent_size, fit, cfg.fit_batch_size)
            ms = 1000 * (time.perf_counter() - t0) / len(test)
            rows.append({"iterations": iterations, "ms_per_image": ms, "mse_hidden": region_mse(ad_decode(decoder, fitted), test.images, hidden).mean().item()})
        update_results(self.results, {"inference_cost": {
            "mask": cfg.cost_mask, "device": str(self.device), "threads": torch.get_num_threads(), "images": len(test), "batch": cfg.fit_batch_size,
            "ae": {"ms_per_image": encode_ms, "mse_hidden": ae_mse, "codes": int(codes.shape[0])}, "ad": rows,
        }})

    def generalisation(self) -> None:
        """Both models trained on the digits 0-4, scored in and out of distribution (``images.generation``)."""
        cfg, train, val, test = self.cfg, self.splits.train, self.splits.val, self.splits.test
        low, low_val = train.labels < 5, val.labels < 5
        sets = {"test_digits_0-4": test.images[test.labels < 5], "test_digits_5-9": test.images[test.labels >= 5],
                "sklearn_digits_8x8": load_sklearn_digits(cfg.net.image_size).images}
        seed_global(cfg.seed, "ae_digits0-4", "init")
        ae = ConvAutoencoder(cfg.net).to(self.device)
        ae_run = train_autoencoder(ae, train.images[low], val.images[low_val], cfg.ae, cfg.seed, name="ae_digits0-4", progress=cfg.progress)
        seed_global(cfg.seed, "ad_digits0-4", "init")
        decoder = CoordConvDecoder(cfg.net).to(self.device)
        _, ad_run = train_autodecoder(decoder, cfg.net.latent_size, train.images[low], val.images[low_val], cfg.ad, cfg.seed, progress=cfg.progress)
        scores = {"ae": {}, "ad": {}}
        for name, images in sets.items():
            scores["ae"][name] = (ae_outputs(ae, images).clamp(0, 1) - images).pow(2).mean().item()
            codes, _ = fit_codes(decoder, images, None, cfg.net.latent_size, cfg.fit, cfg.fit_batch_size)
            scores["ad"][name] = (ad_decode(decoder, codes).clamp(0, 1) - images).pow(2).mean().item()
        update_results(self.results, {"generalisation": {
            "mse": scores, "images": {k: len(v) for k, v in sets.items()}, "trained_on": int(low.sum()),
            "seconds": {"ae": ae_run.seconds, "ad": ad_run.seconds},
        }})

    def generation(self) -> None:
        """Novel images from each model's code distribution (``images.generation``)."""
        cfg, train, test = self.cfg, self.splits.train, self.splits.test
        decoder, ad_codes = self.load_ad()
        ae = self.load_ae("ae")
        with torch.no_grad():
            ae_codes = torch.cat([ae.encode(train.images[i : i + 500].to(self.device)).cpu() for i in range(0, len(train), 500)])
        classifier = self.load_classifier()
        samples = {
            "ae": ae_outputs_from_codes(ae, gaussian_samples(ae_codes, cfg.generated, torch_generator(cfg.seed, "generation", "ae"))),
            "ad": ad_decode(decoder, gaussian_samples(ad_codes.cpu(), cfg.generated, torch_generator(cfg.seed, "generation", "ad"))),
        }
        scores = {name: sample_scores(images, classifier, train.images) for name, images in samples.items()}
        scores["test_images"] = sample_scores(test.images, classifier, train.images)  # the reference: real, unseen digits
        shown = min(8, cfg.generated)
        image_grid(self.out / "generation.png", [(f"{name.upper()} sample {i + 1}", images[i * shown : (i + 1) * shown], None)
                                                 for name, images in samples.items() for i in range(min(4, cfg.generated // shown))],
                   title="decoded draws from a Gaussian fitted to the training codes (columns of 8)")
        update_results(self.results, {"generation": {"scores": scores, "samples": cfg.generated}})

    def collapse(self) -> None:
        """The collapse table (``images.collapse``): per row, scores on the training and test images."""
        cfg, train, test = self.cfg, self.splits.train, self.splits.test
        d, size = cfg.net.latent_size, cfg.net.image_size
        global_mean, by_class = train.images.mean(0, keepdim=True), class_means(train.images, train.labels)

        def scored(on_train: torch.Tensor, on_test: torch.Tensor) -> dict:
            return {"train": collapse_scores(on_train, train.images, train.labels, global_mean, by_class),
                    "test": collapse_scores(on_test, test.images, test.labels, global_mean, by_class)}

        rows, seconds = {}, {}
        ae = self.load_ae("ae")
        rows["ae"] = scored(ae_outputs(ae, train.images), ae_outputs(ae, test.images))
        seed_global(cfg.seed, "ae_zero_input", "init")
        blind = ConvAutoencoder(cfg.net).to(self.device)
        result = train_autoencoder(blind, train.images, self.splits.val.images, cfg.ae, cfg.seed, name="ae_zero_input",
                                   input_masks=lambda n, g: torch.zeros(n, 1, size, size), progress=cfg.progress)
        seconds["ae_zero_input"] = result.seconds
        zeros = torch.zeros_like
        rows["ae_zero_input_on_zeros"] = scored(ae_outputs(blind, zeros(train.images)), ae_outputs(blind, zeros(test.images)))
        rows["ae_zero_input_on_images"] = scored(ae_outputs(blind, train.images), ae_outputs(blind, test.images))
        everyone = torch.arange(len(train))
        for kind in SOURCES:
            seed_global(cfg.seed, "collapse", kind, "init")
            decoder = CoordConvDecoder(replace(cfg.net, latent_size=input_size(kind, d))).to(self.device)
            source = code_source(kind, d, train.labels, cfg.ad.code_init_std, cfg.seed)
            seconds[kind] = train_on_codes(decoder, train.images, source, cfg.collapse, cfg.seed, kind, cfg.progress)["seconds"]
            g = torch_generator(cfg.seed, "collapse", kind, "eval")
            on_train = ad_decode(decoder, source(everyone, g))
            if kind == "onehot_noise":  # its test input is what it was trained on: the true label and fresh noise
                codes = code_source(kind, d, test.labels, cfg.ad.code_init_std, cfg.seed)(torch.arange(len(test)), g)
            else:  # codes fitted to the test images with the decoder frozen, as the AD's
                codes, _ = fit_codes(decoder, test.images, None, d, cfg.fit, cfg.fit_batch_size)
            rows[kind] = scored(on_train, ad_decode(decoder, codes))
        decoder, train_codes = self.load_ad()
        rows["ad"] = scored(ad_decode(decoder, train_codes), ad_decode(decoder, self.ad_test_codes(decoder)))
        notes = {
            "ae": "the AE fed the images",
            "ae_zero_input_on_zeros": "an AE trained on all-zero inputs (targets: the images), fed zeros",
            "ae_zero_input_on_images": "the same AE fed the real images",
            "noise": "the decoder fed a fresh N(0, I) code at every step; test: codes fitted with the decoder frozen",
            "onehot_noise": "the decoder fed the one-hot digit label and fresh N(0, I) noise; test: the true label and fresh noise",
            "fixed_random": f"the decoder fed one fixed N(0, {cfg.ad.code_init_std}^2 I) code per training image, never updated; test: codes fitted with the decoder frozen",
            "ad": "the autodecoder (learned codes); test: codes fitted with the decoder frozen",
        }
        update_results(self.results, {"collapse": {"rows": rows, "notes": notes, "epochs": cfg.collapse.epochs, "seconds": seconds}})

    def capacity(self) -> None:
        """The decoder-capacity grid (``images.capacity``): one row per cell."""
        cfg, cap = self.cfg, self.cfg.capacity
        train, test = self.splits.train, self.splits.test
        low_train, low_val = train.labels < 5, self.splits.val.labels < 5
        high_train, high_test = torch.nonzero(train.labels >= 5).flatten()[:2000], test.labels >= 5
        cells = {}
        for latent in cap.latent_sizes:
            net = replace(cfg.net, latent_size=latent)
            for kind in cap.decoders:
                for model in ("ae", "ad"):
                    name = f"{model}_{kind}_{latent}"
                    t0 = time.perf_counter()
                    codes_of, decode = self._capacity_model(model, kind, net, train.images, self.splits.val.images, name)
                    test_codes = codes_of(test.images, None)
                    mse = (decode(test_codes).clamp(0, 1) - test.images).pow(2).mean().item()
                    cell = {"model": model, "decoder": kind, "latent_size": latent, "mse_test": mse,
                            **probe_scores(codes_of(None, "train"), train.labels, test_codes, test.labels, cap.few, cfg.seed, cfg.knn_k)}
                    if cap.transfer:
                        codes_of, _ = self._capacity_model(model, kind, net, train.images[low_train], self.splits.val.images[low_val], name + "_digits0-4")
                        unseen = probe_scores(codes_of(train.images[high_train], None), train.labels[high_train],
                                              codes_of(test.images[high_test], None), test.labels[high_test], cap.few, cfg.seed, cfg.knn_k)
                        cell["transfer_accuracy"] = unseen["probe_accuracy"]
                    cell["seconds"] = time.perf_counter() - t0
                    cells[name] = cell
        update_results(self.results, {"capacity": {"cells": cells, "config": asdict(cap)}})

    def _capacity_model(self, model: str, kind: str, net: ConvNetConfig, images: torch.Tensor, val: torch.Tensor, name: str):
        """Train one cell's model on ``images``; returns ``(codes_of, decode)``: ``codes_of(x, None)`` the
        codes of new images ``x`` (AE: encoded; AD: fitted, decoder frozen), ``codes_of(None, "train")``
        the training images' codes (AE: encoded; AD: learned); ``decode(codes)`` the images on CPU."""
        cfg, cap = self.cfg, self.cfg.capacity
        seed_global(cfg.seed, "capacity", name, "init")
        decoder = make_decoder(kind, net, cap.hidden).to(self.device)
        if model == "ae":
            ae = EncoderDecoder(net, decoder).to(self.device)
            train_autoencoder(ae, images, val, replace(cfg.ae, epochs=cap.ae_epochs), cfg.seed, name=name, progress=cfg.progress)
            ae.eval()

            def encode(x: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    return torch.cat([ae.encode(x[i : i + 500].to(self.device)).cpu() for i in range(0, len(x), 500)])

            return (lambda x, which: encode(images if which == "train" else x)), (lambda z: ad_decode(decoder, z))
        latents, _ = train_autodecoder(decoder, net.latent_size, images, val, replace(cfg.ad, epochs=cap.ad_epochs), cfg.seed, progress=cfg.progress)
        learned = latents.weight.detach().cpu()

        def codes_of(x: torch.Tensor | None, which: str | None) -> torch.Tensor:
            return learned if which == "train" else fit_codes(decoder, x, None, net.latent_size, cfg.fit, cfg.fit_batch_size)[0]

        return codes_of, (lambda z: ad_decode(decoder, z))

    def report(self) -> None:
        results = read_results(self.results)
        if results.get("training"):
            loss_figure(self.out / "loss_curves.png", results["training"])
        figures = [f for f in FIGURES if (self.out / f).is_file()]
        figures += sorted(p.name for p in self.out.glob("*.png") if p.name not in figures)
        write_report(self.out / "report.md", results, figures)


def ae_outputs_from_codes(ae: ConvAutoencoder, codes: torch.Tensor) -> torch.Tensor:
    """The AE's decoder on ``codes: (N, D)`` → ``(N, C, S, S)`` on CPU."""
    device = next(ae.parameters()).device
    with torch.no_grad():
        return torch.cat([ae.decoder(codes[i : i + 500].to(device)).cpu() for i in range(0, len(codes), 500)])


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
    actions = {"train-classifier": study.train_classifier, "train-ae": study.train_ae, "train-ad": study.train_ad, "complete": study.complete, "interpolate": study.interpolate, "tsne": study.tsne, "inference": study.inference, "generalisation": study.generalisation, "generation": study.generation, "collapse": study.collapse, "capacity": study.capacity, "report": study.report}
    for stage in STAGES:
        if stage not in cfg.stages:
            continue
        if cfg.progress:
            print(f"[mnist] {stage} ...", flush=True)
        t0 = time.perf_counter()
        actions[stage]()
        seconds = read_results(study.results).get("seconds", {})
        seconds[stage] = round(time.perf_counter() - t0, 2)
        seconds["total"] = round(sum(v for k, v in seconds.items() if k != "total"), 2)
        update_results(study.results, {"seconds": seconds})
    if "report" in cfg.stages:  # the report's own time is known only now: write it again with it
        study.report()
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
