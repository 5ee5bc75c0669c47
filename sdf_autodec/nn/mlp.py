"""The DeepSDF decoder: a coordinate MLP conditioned on a latent code.

``f(z, q)``: the code ``z`` is concatenated to every query ``q``; the MLP maps ``[z, q]`` through
``depth`` hidden layers of ``width`` units (ReLU, optional weight norm and dropout). At each layer
listed in ``skip_layers`` the input ``[z, q]`` is concatenated again to the features (the previous
layer is narrowed so that the width stays ``width``, as in DeepSDF). An optional ``tanh`` bounds
the output.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm


ENCODINGS = ("none", "hashgrid")
TCNN_NETWORKS = ("auto", "FullyFusedMLP", "CutlassMLP")


@dataclass
class HashGridConfig:
    """Multiresolution hash encoding of the query point (Instant-NGP; ``backend=tcnn`` only)."""

    levels: int = 16
    """Resolution levels L; the encoding has ``levels * features_per_level`` channels."""
    features_per_level: int = 2
    """Trainable features per level F."""
    log2_hashmap_size: int = 19
    """log2 of the hash table size T per level."""
    base_resolution: int = 16
    """Grid resolution of the coarsest level."""
    per_level_scale: float = 1.5
    """Resolution growth factor between levels (1.5 over 16 levels: 16 → ~7000)."""
    bound: float = 1.0
    """Queries in ``[-bound, bound]^3`` are mapped onto the encoding's unit cube (1: DeepSDF's unit sphere)."""


@dataclass
class DecoderConfig:
    """Architecture of the coordinate MLP decoder."""

    backend: str = "torch"
    """Implementation: ``torch`` (always available) or ``tcnn`` (tiny-cuda-nn, optional extra)."""
    latent_size: int = 256
    """Dimension D of each latent code."""
    in_dim: int = 3
    """Dimension of a query point (3 for xyz)."""
    out_dim: int = 1
    """Channels predicted per query (1 for an SDF)."""
    depth: int = 8
    """Number of hidden layers."""
    width: int = 512
    """Units per hidden layer."""
    skip_layers: list[int] = field(default_factory=lambda: [4])
    """Hidden layers whose input is concatenated again with ``[z, q]`` (DeepSDF: layer 4)."""
    weight_norm: bool = True
    """Weight normalisation on every hidden layer."""
    dropout: float = 0.2
    """Dropout probability after every hidden layer (0 disables it)."""
    output_tanh: bool = True
    """Bound the output to (-1, 1) with tanh."""
    encoding: str = "none"
    """Encoding of the query before the MLP: ``none`` (raw xyz, DeepSDF) or ``hashgrid`` (``backend=tcnn`` only)."""
    hashgrid: HashGridConfig = field(default_factory=HashGridConfig)
    """Parameters of ``encoding=hashgrid``."""
    tcnn_network: str = "auto"
    """``backend=tcnn``: ``auto`` (FullyFusedMLP when ``width`` is 16, 32, 64 or 128, else CutlassMLP),
    ``FullyFusedMLP`` or ``CutlassMLP``."""


def decoder_config_from_dict(d: dict) -> DecoderConfig:
    """A :class:`DecoderConfig` from a plain dict (e.g. a checkpoint's); unknown keys are ignored and
    missing ones take their defaults, so checkpoints written before a field existed still load."""
    known = {f.name for f in fields(DecoderConfig)}
    values = {k: v for k, v in d.items() if k in known}
    if isinstance(values.get("hashgrid"), dict):
        grid = values["hashgrid"]
        values["hashgrid"] = HashGridConfig(**{k: v for k, v in grid.items() if k in {f.name for f in fields(HashGridConfig)}})
    if "skip_layers" in values:
        values["skip_layers"] = list(values["skip_layers"])
    return DecoderConfig(**values)


class CoordinateMLP(nn.Module):
    """DeepSDF-style decoder ``f(z, q)``.

    ``forward(z: (K, D), q: (K, N, in_dim)) -> (K, N, out_dim)``.
    """

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        if cfg.depth < 1 or cfg.width < 1 or cfg.latent_size < 0:
            raise ValueError(f"impossible decoder config: depth={cfg.depth}, width={cfg.width}, latent_size={cfg.latent_size}")
        if cfg.encoding != "none":
            raise ValueError(f"encoding={cfg.encoding} needs backend=tcnn (the torch decoder takes raw xyz); use encoding=none")
        bad = [s for s in cfg.skip_layers if not 0 < s < cfg.depth]
        if bad:
            raise ValueError(f"skip_layers {bad} must lie strictly between 0 and depth={cfg.depth}")
        input_dim = cfg.latent_size + cfg.in_dim
        if cfg.skip_layers and cfg.width <= input_dim:
            raise ValueError(f"width {cfg.width} must exceed latent_size + in_dim = {input_dim} to re-concatenate the input")
        self.cfg = cfg
        self.skip_layers = frozenset(cfg.skip_layers)
        layers = []
        for i in range(cfg.depth):
            in_features = input_dim if i == 0 else cfg.width
            # The layer feeding a skip layer is narrowed so that [features, z, q] is `width` wide.
            out_features = cfg.width - input_dim if (i + 1) in self.skip_layers else cfg.width
            linear = nn.Linear(in_features, out_features)
            layers.append(_weight_norm(linear) if cfg.weight_norm else linear)
        self.hidden = nn.ModuleList(layers)
        self.head = nn.Linear(cfg.width, cfg.out_dim)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()

    def forward_flat(self, zq: torch.Tensor) -> torch.Tensor:
        """``zq: (M, D + in_dim)`` rows of ``[z, q]`` → ``(M, out_dim)``."""
        x = zq
        for i, layer in enumerate(self.hidden):
            if i in self.skip_layers:
                x = torch.cat([x, zq], dim=-1)
            x = self.dropout(torch.relu(layer(x)))
        x = self.head(x)
        return torch.tanh(x) if self.cfg.output_tanh else x

    def forward(self, z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``z: (K, D)``, ``q: (K, N, in_dim)`` → ``(K, N, out_dim)``."""
        k, n, _ = q.shape
        if z.shape != (k, self.cfg.latent_size):
            raise ValueError(f"codes have shape {tuple(z.shape)}, expected ({k}, {self.cfg.latent_size})")
        zq = torch.cat([z[:, None, :].expand(k, n, z.shape[-1]), q], dim=-1)  # (K, N, D + in_dim)
        return self.forward_flat(zq.reshape(k * n, zq.shape[-1])).reshape(k, n, self.cfg.out_dim)  # sizes explicit: K may be 0
