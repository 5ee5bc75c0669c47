"""Decoder capacity against feature quality: does a simpler decoder give better codes?

A grid of decoders (:data:`DECODERS`) × models (``ae``, ``ad``) × latent sizes. The decoder is the
only thing that changes along its axis, and both models of a cell use the *same* decoder:

- ``linear``: one linear map from the code to the pixels (a PCA-like decoder);
- ``mlp``: one hidden layer of ``hidden`` ReLU units;
- ``conv``: the study's autoencoder decoder (:class:`~sdf_autodec.nn.conv.ConvDecoder`, the study's channels);
- ``conv_wide``: the same with twice the channels.

The AE's encoder is the study's :class:`~sdf_autodec.nn.conv.ConvEncoder` in every cell (its capacity
is held fixed); the AD has no encoder (learned codes, test codes fitted with the decoder frozen).
Note that the grid's AD uses these decoders, not the study's CoordConv decoder, so that AE and AD
differ only by the encoder.

Per cell, measured on the codes (:func:`probe_scores`): the test reconstruction MSE, the test
accuracy of a logistic-regression probe fitted on all training codes, the same probe fitted on only
``few`` labelled training codes, 5-NN accuracy, and ``transfer``: for models trained on the digits
0-4 only, a probe fitted on the training codes of the unseen digits 5-9 and tested on the test codes
of 5-9 (do the features carry over to digits the representation never saw?).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from sdf_autodec.nn.conv import ConvDecoder, ConvEncoder, ConvNetConfig

DECODERS = ("linear", "mlp", "conv", "conv_wide")


@dataclass
class CapacityConfig:
    """The grid (stage ``capacity``)."""

    decoders: list[str] = field(default_factory=lambda: list(DECODERS))
    """Decoder kinds, of: linear, mlp, conv, conv_wide."""
    latent_sizes: list[int] = field(default_factory=lambda: [8, 32])
    hidden: int = 256
    """Hidden units of the ``mlp`` decoder."""
    ae_epochs: int = 8
    ad_epochs: int = 15
    """Epochs per cell (the study's AD trains 30: the grid halves it to stay affordable)."""
    few: int = 100
    """Labelled training codes of the few-label probe."""
    transfer: bool = True
    """Also train every cell on the digits 0-4 for the transfer probe (doubles the cost)."""


class CodeDecoder(nn.Module):
    """A decoder with the core's signature ``f(z, q) -> (K, C, S, S)`` (``q`` ignored) around ``net``."""

    def __init__(self, net: nn.Module, latent_size: int):
        super().__init__()
        self.net = net
        self.latent_size = latent_size

    def forward(self, z: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z)


class _Dense(nn.Module):
    """``(B, D) -> (B, C, S, S)`` through ``layers`` (linear output)."""

    def __init__(self, layers: nn.Module, shape: tuple[int, int, int]):
        super().__init__()
        self.layers, self.shape = layers, shape

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z).view(z.shape[0], *self.shape)


def make_decoder(kind: str, net: ConvNetConfig, hidden: int = 256) -> CodeDecoder:
    """The decoder ``kind`` for codes of ``net.latent_size`` and images of ``net``'s size."""
    shape = (net.image_channels, net.image_size, net.image_size)
    pixels = shape[0] * shape[1] * shape[2]
    if kind == "linear":
        body: nn.Module = _Dense(nn.Linear(net.latent_size, pixels), shape)
    elif kind == "mlp":
        body = _Dense(nn.Sequential(nn.Linear(net.latent_size, hidden), nn.ReLU(), nn.Linear(hidden, pixels)), shape)
    elif kind == "conv":
        body = ConvDecoder(net)
    elif kind == "conv_wide":
        body = ConvDecoder(replace(net, channels=[2 * c for c in net.channels]))
    else:
        raise ValueError(f"unknown decoder {kind!r}; choose one of {', '.join(DECODERS)}")
    return CodeDecoder(body, net.latent_size)


class EncoderDecoder(nn.Module):
    """The grid's AE: the study's encoder and a decoder of :func:`make_decoder`."""

    def __init__(self, net: ConvNetConfig, decoder: CodeDecoder):
        super().__init__()
        self.encoder, self.decoder = ConvEncoder(net), decoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def probe_scores(train_codes: torch.Tensor, train_labels: torch.Tensor, test_codes: torch.Tensor, test_labels: torch.Tensor, few: int, seed: int, k: int = 5) -> dict[str, float]:
    """``{"probe_accuracy", "probe_accuracy_few", "knn_accuracy"}`` of codes ``(N, D)`` / ``(M, D)``:
    logistic regression (scikit-learn, standardised codes) fitted on every training code, the same on
    ``few`` training codes drawn by ``seed`` (at least one per digit where the digits allow), and k-NN."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xtr, ytr = train_codes.detach().double().numpy(), train_labels.numpy()
    xte, yte = test_codes.detach().double().numpy(), test_labels.numpy()

    def probe():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))

    order = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(seed)).numpy()
    digits = sorted(set(ytr.tolist()))
    firsts = [next(i for i in order if ytr[i] == d) for d in digits]  # one of each digit first
    chosen = list(dict.fromkeys(firsts + order.tolist()))[: max(few, len(digits))]
    return {
        "probe_accuracy": float(probe().fit(xtr, ytr).score(xte, yte)),
        "probe_accuracy_few": float(probe().fit(xtr[chosen], ytr[chosen]).score(xte, yte)),
        "knn_accuracy": float(KNeighborsClassifier(n_neighbors=min(k, len(xtr))).fit(xtr, ytr).score(xte, yte)),
    }
