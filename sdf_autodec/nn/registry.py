"""One entry point that builds a decoder from its config, whatever the backend.

Optional backends are imported here, lazily; asking for a missing one gives one line that says how
to install it.
"""

from __future__ import annotations

from torch import nn

from sdf_autodec.nn.mlp import CoordinateMLP, DecoderConfig
from sdf_autodec.optional import tinycudann

BACKENDS = ("torch", "tcnn")


class BackendUnavailable(RuntimeError):
    """An optional backend was asked for but cannot run here."""


def build_decoder(cfg: DecoderConfig) -> nn.Module:
    """Build the decoder named by ``cfg.backend``."""
    if cfg.backend == "torch":
        return CoordinateMLP(cfg)
    if cfg.backend == "tcnn":
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable("backend=tcnn needs a CUDA GPU, and none is visible; use backend=torch")
        tcnn = tinycudann()  # one clear line when the package is missing
        from sdf_autodec.nn.tcnn import TcnnDecoder

        # tcnn seeds its own initialisation: draw that seed from torch's (seeded) global generator.
        return TcnnDecoder(cfg, tcnn, seed=int(torch.randint(0, 2**31 - 1, (1,)).item()))
    raise ValueError(f"unknown decoder backend {cfg.backend!r}; choose one of {', '.join(BACKENDS)}")
