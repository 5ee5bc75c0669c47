"""Which torch device a ``device=`` setting means: the one place that decides (no ``.cuda()`` anywhere)."""

from __future__ import annotations

import torch


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → CUDA if available, else CPU; ``cuda`` without an index → ``cuda:<local_rank>`` (one
    GPU per process under torchrun). Asking for CUDA where there is none is a ``ValueError`` (one line)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device={name!r}: not a torch device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name} asked for, but CUDA is not available; use device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device
