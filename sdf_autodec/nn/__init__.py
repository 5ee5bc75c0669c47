"""Decoders behind one registry: :func:`sdf_autodec.nn.registry.build_decoder`."""

from sdf_autodec.nn.mlp import CoordinateMLP, DecoderConfig
from sdf_autodec.nn.registry import build_decoder

__all__ = ["CoordinateMLP", "DecoderConfig", "build_decoder"]
