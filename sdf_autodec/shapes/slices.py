"""SDF slices: a signed distance field on axis-aligned planes through a shape, as pictures.

Two sources for the same picture, so that they compare: the decoder's SDF for a code (a training
shape's, a fitted one, or the zero code: the mean shape), evaluated on a grid over the plane; and a
ground-truth shape's SDF samples (``SdfSamples/...npz``) lying within ``thickness`` of the plane,
each grid cell taking its nearest such sample (blank where none lies within two cells). The model's
normalised frame throughout; a plane ``axis=x, offset=0`` shows (z → right, y → up), ``y`` shows
(x → right, z → up), ``z`` shows (x → right, y → up).

Pictures use a diverging colour map (blue inside, red outside, saturating at the field's largest
magnitude on the plane), the zero level drawn as a solid black line and the clamp band (|SDF| < δ,
where training and fitting see values) between dashed lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sdf_autodec.storage.layout import DatasetLayout, read_sdf_samples
from sdf_autodec.shapes.ground_truth import ground_truth_keys
from sdf_autodec.shapes.mesh import decode_points

AXES = ("x", "y", "z")
PLANE_AXES = {"x": (2, 1), "y": (0, 2), "z": (0, 1)}  # (right, up) coordinate of each plane's picture
SLICE_CMAP = "RdBu_r"


def plane_points(axis: str, offset: float = 0.0, resolution: int = 128, extent: float = 1.0) -> np.ndarray:
    """``(R*R, 3)`` float32 points of the plane ``axis = offset`` over ``[-extent, extent]^2``; row 0 is
    the bottom of the picture (matplotlib's ``origin='lower'``)."""
    if axis not in AXES:
        raise ValueError(f"slice axis must be one of {', '.join(AXES)}, got {axis!r}")
    right, up = PLANE_AXES[axis]
    t = np.linspace(-extent, extent, resolution, dtype=np.float32)
    vv, uu = np.meshgrid(t, t, indexing="ij")  # rows: up, columns: right
    points = np.zeros((resolution * resolution, 3), dtype=np.float32)
    points[:, right], points[:, up] = uu.reshape(-1), vv.reshape(-1)
    points[:, AXES.index(axis)] = offset
    return points


def decoder_slice(decoder: torch.nn.Module, code: torch.Tensor, axis: str, offset: float = 0.0, resolution: int = 128, extent: float = 1.0) -> np.ndarray:
    """The decoder's SDF for ``code: (D,)`` on one plane: ``(R, R)`` float32, row 0 at the bottom."""
    points = torch.from_numpy(plane_points(axis, offset, resolution, extent))
    return decode_points(decoder, code, points, max_batch=65_536).numpy().reshape(resolution, resolution)


def sample_slice(samples: np.ndarray, axis: str, offset: float = 0.0, resolution: int = 128, extent: float = 1.0, thickness: float = 0.02) -> np.ndarray:
    """Ground-truth SDF on one plane from ``samples: (N, 4)`` rows (x, y, z, sdf): each cell takes the
    nearest sample within ``thickness`` of the plane, NaN where none lies within two cells. ``(R, R)``."""
    from scipy.spatial import cKDTree

    samples = np.asarray(samples, dtype=np.float64)
    near = samples[np.abs(samples[:, AXES.index(axis)] - offset) <= thickness]
    out = np.full(resolution * resolution, np.nan)
    if len(near):
        right, up = PLANE_AXES[axis]
        grid = plane_points(axis, offset, resolution, extent)[:, [right, up]]
        cell = 2 * extent / max(resolution - 1, 1)
        d, i = cKDTree(near[:, [right, up]]).query(grid, distance_upper_bound=2 * cell)
        hit = np.isfinite(d)
        out[hit] = near[i[hit], 3]
    return out.reshape(resolution, resolution)


def slices_figure(rows: list[tuple[str, dict[str, np.ndarray]]], clamp: float, extent: float = 1.0, panel_inches: float = 2.2) -> np.ndarray:
    """``rows``: (label, {axis: (R, R) SDF}) → one picture ``(H, W, 3)`` uint8, a row per label, a
    column per axis, one colour scale for all of it, zero level and clamp band drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    axes_used = [a for a in AXES if any(a in grids for _, grids in rows)]
    finite = [np.abs(g[np.isfinite(g)]).max() for _, grids in rows for g in grids.values() if np.isfinite(g).any()]
    vmax = float(max(finite)) if finite else 1.0
    vmax = max(vmax, 1.5 * clamp)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    fig, axs = plt.subplots(len(rows), len(axes_used), figsize=(panel_inches * len(axes_used) + 0.9, panel_inches * len(rows) + 0.3), squeeze=False)
    image = None
    for r, (label, grids) in enumerate(rows):
        for c, axis in enumerate(axes_used):
            ax = axs[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if axis not in grids:
                ax.set_axis_off()
                continue
            g = grids[axis]
            image = ax.imshow(g, origin="lower", extent=(-extent, extent, -extent, extent), cmap=SLICE_CMAP, norm=norm, interpolation="nearest")
            if np.isfinite(g).any() and np.nanmin(g) < 0 < np.nanmax(g):
                t = np.linspace(-extent, extent, g.shape[0])
                ax.contour(t, t, g, levels=[0.0], colors="black", linewidths=1.2)
                ax.contour(t, t, g, levels=[-clamp, clamp], colors="black", linewidths=0.6, linestyles="dashed")
            right, up = ("xyz"[i] for i in PLANE_AXES[axis])
            if r == 0:
                ax.set_title(f"{axis} = 0  ({right} →, {up} ↑)", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    if image is not None:
        bar = fig.colorbar(image, ax=[a for row in axs for a in row], shrink=0.8, pad=0.02)
        bar.set_label(f"SDF (model frame); dashed: clamp ±{clamp:g}", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels


def shape_slices(decoder: torch.nn.Module, code: torch.Tensor, clamp: float, samples: np.ndarray | None = None, label: str = "decoder", resolution: int = 128) -> np.ndarray:
    """The picture of one code's slices through x, y, z = 0, with a second row from the shape's
    ground-truth SDF ``samples: (N, 4)`` when given. ``(H, W, 3)`` uint8."""
    rows = [(label, {a: decoder_slice(decoder, code, a, resolution=resolution) for a in AXES})]
    if samples is not None:
        rows.append(("ground truth (samples)", {a: sample_slice(samples, a, resolution=resolution) for a in AXES}))
    return slices_figure(rows, clamp)


def ground_truth_samples(data: str | Path) -> Callable[[str], np.ndarray | None]:
    """``name → (N, 4)`` SDF samples of that shape in the data directory ``data`` (None when it has none)."""
    keys, layout = ground_truth_keys(Path(data)), DatasetLayout(data)
    return lambda name: np.concatenate(read_sdf_samples(layout.sdf(keys[name]))) if name in keys else None


def model_slices(model, name: str, samples: np.ndarray | None = None, resolution: int = 128) -> np.ndarray:
    """The slices picture of a trained model's code ``name`` (a training shape's id, or ``mean``: the
    zero code), with the model's clamp; ``samples: (N, 4)`` add the ground-truth row. ``model`` is a
    ``shapes.train.TrainedModel``."""
    if name == "mean":
        code, label = torch.zeros(model.latent_size), "mean shape (zero code)"
    elif name in model.ids:
        code, label = model.latents[model.ids.index(name)].detach().cpu(), f"decoder: {name}"
    else:
        raise ValueError(f"{name}: not a training shape of {model.checkpoint} (nor 'mean')")
    return shape_slices(model.decoder.cpu(), code, float(model.config.get("clamp", 0.1)), samples, label, resolution)
