"""The image study's configuration and shared state: :class:`MnistConfig` (every stage's settings),
:func:`validate` (impossible configurations fail before anything runs) and :class:`Study` (data,
device, paths, the trained models and the cache of test codes), used by the stages of
:mod:`~sdf_autodec.images.stages` and :mod:`~sdf_autodec.images.experiments` and run in order by
:mod:`~sdf_autodec.images.run`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from sdf_autodec.core.devices import resolve_device
from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.core.seeding import torch_generator
from sdf_autodec.images.capacity import DECODERS, CapacityConfig
from sdf_autodec.images.collapse import CollapseConfig
from sdf_autodec.images.classifier import ClassifierConfig, make_classifier
from sdf_autodec.images.data import DataConfig, MnistSplits, load_splits
from sdf_autodec.images.masks import center_square, make_mask
from sdf_autodec.images.report import read_results, update_results
from sdf_autodec.images.store import CodeCache, ModelStore, weights_digest
from sdf_autodec.images.train import ADTrainConfig, AETrainConfig, fit_codes
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

    def pairs(self, count: int) -> torch.Tensor:
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


def ae_outputs_from_codes(ae: ConvAutoencoder, codes: torch.Tensor) -> torch.Tensor:
    """The AE's decoder on ``codes: (N, D)`` → ``(N, C, S, S)`` on CPU."""
    device = next(ae.parameters()).device
    with torch.no_grad():
        return torch.cat([ae.decoder(codes[i : i + 500].to(device)).cpu() for i in range(0, len(codes), 500)])


def ae_codes(ae: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The AE's codes of ``images: (N, C, S, S)`` → ``(N, D)`` on CPU (in batches, no gradients)."""
    device = next(ae.parameters()).device
    with torch.no_grad():
        return torch.cat([ae.encode(images[i : i + batch_size].to(device)).cpu() for i in range(0, len(images), batch_size)])
