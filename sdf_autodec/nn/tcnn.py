"""The DeepSDF decoder on tiny-cuda-nn's fused MLPs (``backend=tcnn``: a CUDA GPU and the optional
``tinycudann`` package, imported only through :mod:`sdf_autodec.optional`).

``f(z, q)`` has the layer layout of :class:`sdf_autodec.nn.mlp.CoordinateMLP`, built from tcnn networks:

- A tcnn network has no skip connection, so the MLP is split at every layer of ``skip_layers``.
  Segment j runs the hidden layers up to the next skip layer; its output layer is that skip
  layer's narrowed input (``width - input`` units, ReLU). The features are concatenated with the
  input ``[z, enc(q)]`` again in torch and fed to the next segment; the last segment ends with
  the head (``out_dim`` units, no activation; ``tanh`` is applied in torch).
- FullyFusedMLP when the hidden width is 16, 32, 64 or 128, CutlassMLP otherwise
  (``tcnn_network`` overrides). A segment without hidden layers (a skip at layer 1, or two
  consecutive skips) is a single matmul and stays a torch ``nn.Linear``.
- tcnn computes in fp16 and returns fp16: every output is cast to fp32 before the next torch
  operation, so the loss always sees fp32. The parameters stay fp32 in torch's optimiser.
- ``encoding=hashgrid``: the query, mapped from ``[-bound, bound]^3`` onto the unit cube, goes
  through tcnn's multiresolution hash grid; the MLP input is ``[z, grid(q)]``.
- tcnn has no weight norm and no dropout: asking for either is an error, not silently ignored.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import nn

from sdf_autodec.nn.mlp import TCNN_NETWORKS, DecoderConfig, HashGridConfig

FULLY_FUSED_WIDTHS = (16, 32, 64, 128)
"""Hidden widths tcnn's FullyFusedMLP supports."""


def network_type(cfg: DecoderConfig) -> str:
    """The tcnn network class for ``cfg``: FullyFusedMLP where the width allows, else CutlassMLP."""
    if cfg.tcnn_network != "auto":
        return cfg.tcnn_network
    return "FullyFusedMLP" if cfg.width in FULLY_FUSED_WIDTHS else "CutlassMLP"


def hashgrid_encoding_config(grid: HashGridConfig) -> dict:
    """tcnn's encoding config of :class:`HashGridConfig`."""
    return {
        "otype": "Grid",
        "type": "Hash",
        "n_levels": grid.levels,
        "n_features_per_level": grid.features_per_level,
        "log2_hashmap_size": grid.log2_hashmap_size,
        "base_resolution": grid.base_resolution,
        "per_level_scale": grid.per_level_scale,
        "interpolation": "Linear",
    }


def check_tcnn_config(cfg: DecoderConfig) -> None:
    """Raise a one-line ``ValueError`` for what tcnn cannot build."""
    if cfg.weight_norm or cfg.dropout > 0:
        raise ValueError(
            "backend=tcnn has no weight norm and no dropout: set model.weight_norm=false model.dropout=0 "
            "(or use recipe=tcnn / recipe=tcnn_hashgrid)"
        )
    if cfg.tcnn_network not in TCNN_NETWORKS:
        raise ValueError(f"tcnn_network={cfg.tcnn_network!r}: choose one of {', '.join(TCNN_NETWORKS)}")
    if cfg.tcnn_network == "FullyFusedMLP" and cfg.width not in FULLY_FUSED_WIDTHS:
        raise ValueError(f"FullyFusedMLP needs width in {FULLY_FUSED_WIDTHS}, got {cfg.width}; use tcnn_network=CutlassMLP or auto")
    if cfg.encoding not in ("none", "hashgrid"):
        raise ValueError(f"unknown encoding {cfg.encoding!r}; choose none or hashgrid")
    bad = [s for s in cfg.skip_layers if not 0 < s < cfg.depth]
    if cfg.depth < 1 or cfg.width < 1 or bad:
        raise ValueError(f"impossible decoder config: depth={cfg.depth}, width={cfg.width}, skip_layers={cfg.skip_layers}")


class _LinearReLU(nn.Sequential):
    """A segment without hidden layers: one matmul (and ReLU unless it is the head)."""

    def __init__(self, n_in: int, n_out: int, relu: bool):
        super().__init__(nn.Linear(n_in, n_out), *([nn.ReLU()] if relu else []))


class TcnnDecoder(nn.Module):
    """DeepSDF-style decoder ``f(z, q)`` on tiny-cuda-nn (see the module docstring).

    ``forward(z: (K, D), q: (K, N, in_dim)) -> (K, N, out_dim)`` float32.
    ``tcnn`` is the imported ``tinycudann`` module; ``seed`` seeds tcnn's parameter initialisation.
    """

    def __init__(self, cfg: DecoderConfig, tcnn: ModuleType, seed: int = 1337):
        super().__init__()
        check_tcnn_config(cfg)
        self.cfg = cfg
        self.encoder = None
        feature_dim = cfg.in_dim
        if cfg.encoding == "hashgrid":
            self.encoder = tcnn.Encoding(cfg.in_dim, hashgrid_encoding_config(cfg.hashgrid), seed=seed)
            feature_dim = int(self.encoder.n_output_dims)
        self.input_dim = cfg.latent_size + feature_dim
        if cfg.skip_layers and cfg.width <= self.input_dim:
            raise ValueError(f"width {cfg.width} must exceed latent_size + encoded query = {self.input_dim} to re-concatenate the input")
        otype = network_type(cfg)
        bounds = [0, *sorted(set(cfg.skip_layers)), cfg.depth]
        segments = []
        for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            last = b == cfg.depth
            n_in = self.input_dim if a == 0 else cfg.width
            n_out = cfg.out_dim if last else cfg.width - self.input_dim
            hidden = b - a if last else b - a - 1  # a segment's last layer is tcnn's output layer
            if hidden == 0:
                segments.append(_LinearReLU(n_in, n_out, relu=not last))
                continue
            network = {
                "otype": otype,
                "activation": "ReLU",
                "output_activation": "None" if last else "ReLU",
                "n_neurons": cfg.width,
                "n_hidden_layers": hidden,
            }
            segments.append(tcnn.Network(n_in, n_out, network, seed=seed + j + 1))
        self.segments = nn.ModuleList(segments)

    def encode(self, q: torch.Tensor) -> torch.Tensor:
        """``q: (M, in_dim)`` → ``(M, features)`` float32 (the raw query without an encoding)."""
        if self.encoder is None:
            return q
        bound = self.cfg.hashgrid.bound
        unit = ((q / bound + 1.0) * 0.5).clamp(0.0, 1.0)
        return self.encoder(unit).float()

    def forward(self, z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """``z: (K, D)``, ``q: (K, N, in_dim)`` → ``(K, N, out_dim)`` float32."""
        k, n, _ = q.shape
        if z.shape != (k, self.cfg.latent_size):
            raise ValueError(f"codes have shape {tuple(z.shape)}, expected ({k}, {self.cfg.latent_size})")
        codes = z[:, None, :].expand(k, n, z.shape[-1]).reshape(k * n, z.shape[-1])
        x0 = torch.cat([codes.float(), self.encode(q.reshape(k * n, q.shape[-1]).float())], dim=-1)  # (K*N, input_dim)
        x = x0
        for j, segment in enumerate(self.segments):
            if j > 0:
                x = torch.cat([x, x0], dim=-1)  # re-concatenation at the skip layer
            x = segment(x).float()  # tcnn returns fp16
        if self.cfg.output_tanh:
            x = torch.tanh(x)
        return x.reshape(k, n, self.cfg.out_dim)
