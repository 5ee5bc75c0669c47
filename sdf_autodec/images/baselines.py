"""The trivial answers to a masked image: what a completion must beat to mean anything.

Both fill the hidden pixels and keep the visible ones as given (so their error on the visible
pixels is 0, and their whole-image MSE is their hidden-pixel MSE times the hidden fraction):

- :func:`mean_fill`: the mean training image on the hidden pixels;
- :func:`retrieval`: the training image closest to the test image on its visible pixels (squared
  distance over the visible pixels only) on the hidden pixels: nearest-neighbour completion.

Images are ``(N, C, S, S)`` in [0, 1]; masks ``(N, 1, S, S)`` or ``(1, 1, S, S)``, 1 visible, 0 hidden.
"""

from __future__ import annotations

import torch


def composite(images: torch.Tensor, masks: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """``images`` where ``masks`` is 1, ``fill`` (broadcastable to ``images``) where it is 0."""
    m = masks.expand_as(images)
    return images * m + fill.expand_as(images) * (1.0 - m)


def mean_fill(images: torch.Tensor, masks: torch.Tensor, training: torch.Tensor) -> torch.Tensor:
    """``(N, C, S, S)``: the mean of ``training: (M, C, S, S)`` filled into the hidden pixels."""
    return composite(images, masks, training.mean(dim=0, keepdim=True))


def nearest_on_visible(images: torch.Tensor, masks: torch.Tensor, training: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    """``(N,)``: for each image, the index of the training image with the least squared distance over
    its visible pixels (``sum_p m_p (x_p - t_p)^2``, computed as three matrix products; ties: the lowest index)."""
    flat_train = training.flatten(1)  # (M, P)
    train_sq = flat_train.pow(2)
    out = []
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].flatten(1)  # (n, P)
        m = masks[i : i + chunk] if masks.shape[0] == len(images) else masks
        m = m.expand(len(x), *images.shape[1:]).flatten(1)
        d = (m * x.pow(2)).sum(1, keepdim=True) - 2.0 * (m * x) @ flat_train.T + m @ train_sq.T  # (n, M)
        out.append(d.argmin(dim=1))
    return torch.cat(out)


def retrieval(images: torch.Tensor, masks: torch.Tensor, training: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(completions: (N, C, S, S), index: (N,))``: the nearest training image on the visible pixels
    (:func:`nearest_on_visible`) filled into the hidden ones, and which training image it was."""
    index = nearest_on_visible(images, masks, training)
    return composite(images, masks, training[index]), index
