"""Observation masks for images: 1 where a pixel is visible, 0 where it is hidden.

A mask is a float tensor ``(N, 1, S, S)`` (or ``(1, 1, S, S)``, broadcast over a batch). It plays
two roles: the input an autoencoder sees is ``image * mask`` (hidden pixels black), and the
per-pixel weights of the autodecoder's fitting loss are the mask itself (hidden pixels count 0).

Named masks (:func:`make_mask`): ``center8`` ... ``centerS`` (an S x S square in the middle),
``random50`` (50% of the pixels of each image, drawn independently per image), ``top_half``,
``bottom_half``, ``left_half``, ``right_half``.
"""

from __future__ import annotations

import re

import torch


def center_square(hidden: int, size: int = 32) -> torch.Tensor:
    """``(1, 1, size, size)``: the centred ``hidden`` x ``hidden`` square is 0, the rest 1."""
    if not 0 < hidden <= size:
        raise ValueError(f"a centre square of {hidden} pixels does not fit a {size} x {size} image")
    mask = torch.ones(1, 1, size, size)
    start = (size - hidden) // 2
    mask[..., start : start + hidden, start : start + hidden] = 0.0
    return mask


def random_pixels(num: int, fraction: float, size: int = 32, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(num, 1, size, size)``: exactly ``round(fraction · size²)`` pixels hidden per image, drawn per image."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"hidden fraction {fraction} is not in [0, 1]")
    pixels = size * size
    hidden = round(fraction * pixels)
    ranks = torch.rand(num, pixels, generator=generator).argsort(dim=1).argsort(dim=1)  # a random permutation per image
    return (ranks >= hidden).float().view(num, 1, size, size)


def half(side: str, size: int = 32) -> torch.Tensor:
    """``(1, 1, size, size)``: the ``side`` half (top, bottom, left, right) hidden."""
    mask = torch.ones(1, 1, size, size)
    h = size // 2
    regions = {"top": (slice(0, h), slice(None)), "bottom": (slice(h, None), slice(None)), "left": (slice(None), slice(0, h)), "right": (slice(None), slice(h, None))}
    if side not in regions:
        raise ValueError(f"unknown half {side!r}; choose one of {', '.join(regions)}")
    mask[(..., *regions[side])] = 0.0
    return mask


def make_mask(name: str, num: int, size: int = 32, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(num, 1, size, size)`` masks for the named kind (see module docstring)."""
    if m := re.fullmatch(r"center(\d+)", name):
        return center_square(int(m.group(1)), size).expand(num, 1, size, size).clone()
    if m := re.fullmatch(r"random(\d+)", name):
        return random_pixels(num, int(m.group(1)) / 100.0, size, generator)
    if m := re.fullmatch(r"(top|bottom|left|right)_half", name):
        return half(m.group(1), size).expand(num, 1, size, size).clone()
    raise ValueError(f"unknown mask {name!r}; use centerS (e.g. center12), randomP (e.g. random50) or top_half/bottom_half/left_half/right_half")
