"""Convolutional networks for images: the baseline autoencoder's encoder and decoder, and the
autodecoder's CoordConv decoder.

All three work on square images of ``image_size = 4 · 2^L`` pixels (32 for padded MNIST) with ``L =
len(channels)`` stride-2 stages between a 4 x 4 bottleneck and the full resolution:

- :class:`ConvEncoder` ``(B, C, H, W) -> (B, D)``: stride-2 convolutions + ReLU, then a linear map.
- :class:`ConvDecoder` ``(B, D) -> (B, C, H, W)``: a linear map to ``(channels[-1], 4, 4)``, then
  stride-2 transposed convolutions + ReLU, a linear output.
- :class:`CoordConvDecoder` ``f(z, q) -> (K, C, H, W)``: the autodecoder's decoder, with the core's
  decoder signature. Same upsampling path, but before every transposed convolution the normalised
  pixel coordinates (x, y in [-1, 1]) are concatenated to the feature maps as two extra channels
  (CoordConv, Liu et al. 2018), and the activations are leaky ReLUs. It ignores the queries ``q``:
  an image decoder predicts the whole pixel grid at once.

Both decoders end linearly (no sigmoid): with a sigmoid and a squared-error loss, the autoencoder
collapsed to an all-black output within 50 steps on MNIST (90% of the pixels are 0, the sigmoid
saturates and its gradient vanishes; measured at learning rates 3e-4 to 2e-3). Users of the
outputs clamp them to the pixel range where they need images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ConvNetConfig:
    """Architecture of the image networks (shared by the autoencoder and the autodecoder)."""

    latent_size: int = 32
    """Dimension D of a code, the same for both models."""
    image_size: int = 32
    """Side of the (square) images; must be 4 · 2^len(channels)."""
    image_channels: int = 1
    """Channels of the images (1 for MNIST)."""
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    """Feature channels from the finest resolution to the 4 x 4 bottleneck (encoder order)."""
    negative_slope: float = 0.2
    """Slope of the autodecoder's leaky ReLUs for negative inputs."""


def _check(cfg: ConvNetConfig) -> None:
    if cfg.latent_size < 1 or cfg.image_channels < 1 or not cfg.channels or min(cfg.channels) < 1:
        raise ValueError(f"impossible image network: latent_size={cfg.latent_size}, channels={cfg.channels}, image_channels={cfg.image_channels}")
    expected = 4 * 2 ** len(cfg.channels)
    if cfg.image_size != expected:
        raise ValueError(f"image_size={cfg.image_size} does not fit {len(cfg.channels)} stride-2 stages from 4 x 4 (that gives {expected})")


def pixel_coordinates(size: int, device=None, dtype=None) -> torch.Tensor:
    """``(2, size, size)``: x (column) and y (row) of every pixel centre, normalised to [-1, 1]."""
    t = torch.linspace(-1.0, 1.0, size, device=device, dtype=dtype)
    y, x = torch.meshgrid(t, t, indexing="ij")
    return torch.stack([x, y])


class ConvEncoder(nn.Module):
    """The autoencoder's encoder. ``forward(x: (B, C, H, W)) -> (B, D)``."""

    def __init__(self, cfg: ConvNetConfig):
        super().__init__()
        _check(cfg)
        self.cfg = cfg
        layers, c_in = [], cfg.image_channels
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cfg.channels[-1] * 16, cfg.latent_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.cfg.image_channels, self.cfg.image_size
        if x.shape[1:] != (c, s, s):
            raise ValueError(f"images have shape {tuple(x.shape)}, expected (B, {c}, {s}, {s})")
        return self.head(self.features(x).flatten(1))  # (B, channels[-1], 4, 4) -> (B, D)


class ConvDecoder(nn.Module):
    """The autoencoder's decoder. ``forward(z: (B, D)) -> (B, C, H, W)`` (linear output)."""

    def __init__(self, cfg: ConvNetConfig):
        super().__init__()
        _check(cfg)
        self.cfg = cfg
        self.head = nn.Linear(cfg.latent_size, cfg.channels[-1] * 16)
        layers = []
        widths = [*reversed(cfg.channels), cfg.image_channels]
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.head(z)).view(z.shape[0], self.cfg.channels[-1], 4, 4)
        return self.upsample(x)


class ConvAutoencoder(nn.Module):
    """Encoder + decoder. ``encode(x: (B, C, H, W)) -> (B, D)``, ``forward(x) -> (B, C, H, W)``."""

    def __init__(self, cfg: ConvNetConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = ConvEncoder(cfg)
        self.decoder = ConvDecoder(cfg)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class CoordConvDecoder(nn.Module):
    """The autodecoder's decoder ``f(z, q)``. ``z: (K, D)``; ``q`` is ignored (may be ``None``);
    returns ``(K, C, H, W)`` (linear output)."""

    def __init__(self, cfg: ConvNetConfig):
        super().__init__()
        _check(cfg)
        self.cfg = cfg
        self.head = nn.Linear(cfg.latent_size, cfg.channels[-1] * 16)
        widths = [*reversed(cfg.channels), cfg.image_channels]
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(c_in + 2, c_out, kernel_size=4, stride=2, padding=1) for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        for i in range(len(self.upsample)):  # the coordinate channels at each stage's input resolution
            self.register_buffer(f"coords{i}", pixel_coordinates(4 * 2**i), persistent=False)

    def forward(self, z: torch.Tensor, q: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.cfg.latent_size:
            raise ValueError(f"codes have shape {tuple(z.shape)}, expected (K, {self.cfg.latent_size})")
        k, slope = z.shape[0], self.cfg.negative_slope
        x = nn.functional.leaky_relu(self.head(z), slope).view(k, self.cfg.channels[-1], 4, 4)
        for i, layer in enumerate(self.upsample):
            coords = getattr(self, f"coords{i}").to(x.dtype).expand(k, 2, *x.shape[2:])  # (K, 2, h, w)
            x = layer(torch.cat([x, coords], dim=1))  # (K, c + 2, h, w) -> (K, c', 2h, 2w)
            if i < len(self.upsample) - 1:
                x = nn.functional.leaky_relu(x, slope)
        return x
