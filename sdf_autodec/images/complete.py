"""Masked completion of test images: what each model returns when part of an image is hidden.

- The autoencoder (AE) can only map an input image to an output: it is fed the masked image (hidden
  pixels black), or, in the study's second experiment, it was *trained* with a loss that ignores
  the hidden square and is fed the whole image.
- The autodecoder (AD) fits one code per image to the visible pixels alone, with its decoder frozen:
  the core's batched :func:`~sdf_autodec.core.fitting.fit_latents` with per-pixel weights equal to
  the mask (0 on hidden pixels), a whole batch of test images at once. Its output is the decoder's
  image of the fitted code, hidden pixels included.

Experiments (each scored by :func:`~sdf_autodec.images.metrics.masked_scores` on every test image):

- ``center/<S>`` for each centre square S: ``ae_masked_input``, ``ae_masked_loss``, ``ad``;
- ``random50`` (a fraction of the pixels hidden, drawn per image) and ``top_half`` (or another
  half): ``ae`` is the AE's best fair chance, an AE trained on its training images with masks of
  the same kind on its input (the loss on every pixel), fed the masked image; ``ae_masked_input``
  is the plain AE fed the masked image; ``ad`` the autodecoder;
- in every masked experiment, where the models are given: ``ae_mask_trained`` (the AE trained with
  that same mask on its input: the AD's fair rival; for ``random50`` and ``top_half`` the same
  outputs as ``ae``), and the trivial answers of :mod:`~sdf_autodec.images.baselines`,
  ``mean_fill`` and ``retrieval`` (from the training images);
- everywhere, ``ae_equal_time`` where given: the plain AE trained for the AD's wall time, fed the
  masked image (the whole image on ``full``): the comparison at equal compute;
- ``full`` (nothing hidden): plain reconstruction by both (scored on the whole image only).

With a classifier and the test labels, every entry also gets ``digit_accuracy``: the fraction of
completions the fixed classifier (:mod:`~sdf_autodec.images.classifier`) labels as the true digit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.core.seeding import torch_generator
from sdf_autodec.images.baselines import mean_fill, retrieval
from sdf_autodec.images.classifier import digit_accuracy
from sdf_autodec.images.masks import make_mask
from sdf_autodec.images.metrics import masked_scores, psnr, region_mse
from sdf_autodec.images.train import fit_codes


@dataclass
class CompletionModels:
    """The trained models the experiments compare."""

    ae: nn.Module
    """The AE trained normally (``ConvAutoencoder``)."""
    ae_masked_loss: dict[int, nn.Module]
    """Centre square S → an AE trained with a loss that ignores that square."""
    ae_mask_trained: dict[str, nn.Module]
    """Mask name (e.g. ``random50``) → an AE trained with such masks on its input; may be empty."""
    ad: nn.Module
    """The AD's decoder (``CoordConvDecoder``)."""
    latent_size: int
    training_images: torch.Tensor | None = None
    """``(M, C, S, S)``: the training images of the trivial answers (``mean_fill``, ``retrieval``); None: no baselines."""
    classifier: nn.Module | None = None
    """The fixed digit classifier that scores ``digit_accuracy``; None: not scored."""
    ae_equal_time: nn.Module | None = None
    """The plain AE trained for the AD's wall time (fed the masked image; the whole one on ``full``); None: absent."""


@dataclass
class Outcome:
    """One experiment: its masks and every model's outputs, ``(N, C, S, S)`` each."""

    masks: torch.Tensor
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    """What each model was given (the AE's input image; the AD's visible pixels)."""
    scores: dict[str, dict[str, float]] = field(default_factory=dict)


@torch.no_grad()
def ae_outputs(ae: nn.Module, inputs: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """``inputs: (N, C, S, S)`` → the AE's outputs ``(N, C, S, S)`` (on the AE's device, returned on CPU)."""
    device = next(ae.parameters()).device
    ae.eval()
    return torch.cat([ae(inputs[i : i + batch_size].to(device)).cpu() for i in range(0, len(inputs), batch_size)])


@torch.no_grad()
def ad_decode(decoder: nn.Module, codes: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """``codes: (N, D)`` → the decoder's images ``(N, C, S, S)`` (on CPU)."""
    device = next(decoder.parameters()).device
    decoder.eval()
    return torch.cat([decoder(codes[i : i + batch_size].to(device)).cpu() for i in range(0, len(codes), batch_size)])


def ad_complete(decoder: nn.Module, images: torch.Tensor, masks: torch.Tensor | None, latent_size: int, fit: FitConfig, batch_size: int = 1000):
    """Fit codes to the visible pixels of ``images: (N, C, S, S)`` and decode them.

    Returns ``(outputs: (N, C, S, S), codes: (N, D))``."""
    codes, _ = fit_codes(decoder, images, masks, latent_size, fit, batch_size)
    return ad_decode(decoder, codes), codes


def _score(outcome: Outcome, truth: torch.Tensor) -> None:
    outcome.scores = {name: masked_scores(out, truth, outcome.masks) for name, out in outcome.outputs.items()}


def _score_digits(outcome: Outcome, classifier: nn.Module, labels: torch.Tensor) -> None:
    for name, out in outcome.outputs.items():
        outcome.scores[name]["digit_accuracy"] = digit_accuracy(classifier, out, labels)


def run_experiments(
    models: CompletionModels,
    images: torch.Tensor,
    center_sizes: list[int],
    extra_masks: list[str],
    fit: FitConfig,
    seed: int,
    batch_size: int = 1000,
    progress: bool = True,
    labels: torch.Tensor | None = None,
) -> tuple[dict[str, Outcome], torch.Tensor]:
    """Every experiment of the module docstring on ``images: (N, C, S, S)`` (digits ``labels: (N,)``,
    needed for ``digit_accuracy``).

    Returns ``{"center8": Outcome, ..., "random50": ..., "top_half": ..., "full": ...}`` and the AD's
    codes of the unmasked images ``(N, D)`` (for the latent-space figures).
    """
    n, size = len(images), images.shape[-1]
    names = [f"center{s}" for s in center_sizes] + list(extra_masks) + ["full"]
    bar = tqdm(names, desc="masked experiments", unit="experiment", disable=not progress)
    outcomes: dict[str, Outcome] = {}
    full_codes = None
    for name in bar:
        bar.set_postfix_str(name)
        if name == "full":
            masks = torch.ones(n, 1, size, size)
        else:
            masks = make_mask(name, n, size, torch_generator(seed, "test-masks", name))
        masked = images * masks
        outcome = Outcome(masks)
        if name.startswith("center"):
            s = int(name.removeprefix("center"))
            outcome.inputs["ae_masked_input"], outcome.outputs["ae_masked_input"] = masked, ae_outputs(models.ae, masked)
            if s in models.ae_masked_loss:
                outcome.inputs["ae_masked_loss"], outcome.outputs["ae_masked_loss"] = images, ae_outputs(models.ae_masked_loss[s], images)
        elif name == "full":
            outcome.inputs["ae"], outcome.outputs["ae"] = images, ae_outputs(models.ae, images)
        else:
            outcome.inputs["ae_masked_input"], outcome.outputs["ae_masked_input"] = masked, ae_outputs(models.ae, masked)
            trained = models.ae_mask_trained.get(name)
            if trained is not None:
                outcome.inputs["ae"], outcome.outputs["ae"] = masked, ae_outputs(trained, masked)
            else:  # no AE trained with such masks: the plain AE fed the masked image is its best chance here
                outcome.inputs["ae"], outcome.outputs["ae"] = masked, outcome.outputs["ae_masked_input"]
        if models.ae_equal_time is not None:
            outcome.inputs["ae_equal_time"], outcome.outputs["ae_equal_time"] = masked, ae_outputs(models.ae_equal_time, masked)
        if name != "full":
            if name.startswith("center") and name in models.ae_mask_trained:
                outcome.inputs["ae_mask_trained"], outcome.outputs["ae_mask_trained"] = masked, ae_outputs(models.ae_mask_trained[name], masked)
            elif name in models.ae_mask_trained:
                outcome.inputs["ae_mask_trained"], outcome.outputs["ae_mask_trained"] = masked, outcome.outputs["ae"]
            if models.training_images is not None:
                outcome.inputs["mean_fill"] = outcome.inputs["retrieval"] = masked
                outcome.outputs["mean_fill"] = mean_fill(images, masks, models.training_images)
                outcome.outputs["retrieval"], _ = retrieval(images, masks, models.training_images)
        fit_masks = None if name == "full" else masks
        outcome.outputs["ad"], codes = ad_complete(models.ad, images, fit_masks, models.latent_size, fit, batch_size)
        outcome.inputs["ad"] = masked
        if name == "full":
            full_codes = codes
            outcome.scores = {k: _whole_only(out, images) for k, out in outcome.outputs.items()}
        else:
            _score(outcome, images)
        if models.classifier is not None and labels is not None:
            _score_digits(outcome, models.classifier, labels)
        outcomes[name] = outcome
    return outcomes, full_codes


def _whole_only(predictions: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    whole = region_mse(predictions, truth).mean().item()
    return {"mse_whole": whole, "psnr_whole": psnr(whole)}
