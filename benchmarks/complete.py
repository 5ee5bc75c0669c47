"""Benchmark: batched latent fitting (K shapes in one forward/backward per step) vs one shape at a time.

    .venv/bin/python benchmarks/complete.py [--quick] [--run RUN_DIR] [--iterations N] [--surface N]

For K = 1, 8, 32 and 128 synthetic partial scans (spheres and boxes of different sizes seen from a
camera, turned into observations by ``sdf_autodec.shapes.observations.observe``: surface points,
±η along the rays, free space as a hinge), the same ``FitConfig`` (same iterations, no early
stopping) runs once with all K shapes batched and once per shape. Reported: shapes per second both
ways, the speedup, and the largest difference between the codes the two give (they must agree).

Why batching gains little on a CPU: the benchmark also counts the floating-point operations of a
fit (``torch.utils.flop_counter``: the matrix products of the forward and backward passes) and
times this machine's best matrix product (a large square ``torch.mm`` at the same thread count).
The one-at-a-time fit already runs at some fraction of that peak; no batching can go faster than
the peak, so ``peak / achieved`` bounds the speedup any batched fit could reach here
(``speedup_bound``).
The decoder is the run's (``--run``) or, by default, the small preset with seeded random weights: the
cost of a fitting step does not depend on the weights' values. The last line is JSON with
``speedup_k1``, ``speedup_k8``, ``speedup_k32``, ``speedup_k128``, ``max_code_difference``,
``peak_gflops``, ``alone_gflops`` and ``speedup_bound``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import finish, setup  # noqa: E402
from tests.factories import analytic_scan  # noqa: E402  (the tests' factory)

from sdf_autodec.core.fitting import FitConfig, fit_latents  # noqa: E402
from sdf_autodec.core.observations import Observations  # noqa: E402
from sdf_autodec.nn.mlp import DecoderConfig  # noqa: E402
from sdf_autodec.nn.registry import build_decoder  # noqa: E402
from sdf_autodec.shapes.loss import clamped_l1  # noqa: E402
from sdf_autodec.shapes.observations import ObservationConfig, observe  # noqa: E402


def observations(k: int, surface: int) -> Observations:
    cfg = ObservationConfig(num_surface=surface)
    built = [observe(analytic_scan(i, np.random.default_rng(i)), cfg, np.random.default_rng(1000 + i)) for i in range(k)]
    return Observations(
        queries=torch.from_numpy(np.stack([o.queries for o in built])),
        targets=torch.from_numpy(np.stack([o.targets for o in built])),
        lower_bound=torch.from_numpy(np.stack([o.lower_bound for o in built])),
    )


def peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's best float32 matrix-product rate (GFLOP/s) at torch's current thread count."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def fit_flops(decoder, obs: Observations, loss, latent: int, fit: FitConfig, init: torch.Tensor) -> int:
    """Floating-point operations (matrix products, forward and backward) of one ``fit_latents`` call."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fit_latents(decoder, obs, loss, latent, fit, init=init)
    return int(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 1, 8, 32 with 10 iterations (under a minute)")
    parser.add_argument("--run", default="", help="a trained run directory (default: the small preset, random weights)")
    parser.add_argument("--iterations", type=int, default=30, help="fitting steps, the same for both ways")
    parser.add_argument("--surface", type=int, default=1000, help="observed surface points per shape (4x as many queries with ±η and free space)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    ks = [1, 8, 32] if args.quick else [1, 8, 32, 128]
    if args.quick:
        args.iterations = 10
    setup(args.threads)
    if args.run:
        from sdf_autodec.shapes.train import load_trained

        model = load_trained(args.run, "cpu")
        decoder, latent = model.decoder, model.latent_size
    else:
        torch.manual_seed(0)
        cfg = DecoderConfig(latent_size=32, depth=5, width=128, skip_layers=[3], weight_norm=True, dropout=0.0, output_tanh=True)
        decoder, latent = build_decoder(cfg), cfg.latent_size
    decoder.eval()
    fit = FitConfig(iterations=args.iterations, patience=0, restarts=1)
    loss = lambda pred, obs: clamped_l1(pred, obs, 0.1)  # noqa: E731
    obs_all = observations(max(ks), args.surface)
    init_all = torch.randn(max(ks), latent, generator=torch.Generator().manual_seed(0)) * fit.init_std
    fit_latents(decoder, obs_all.select(slice(0, 2)), loss, latent, FitConfig(iterations=3), init=init_all[:2])  # warm-up
    result, max_diff = {}, 0.0
    print(f"{obs_all.queries.shape[1]} queries per shape, {args.iterations} iterations, torch threads {torch.get_num_threads()}")
    print(f"{'K':>4} {'batched shapes/s':>17} {'one-by-one shapes/s':>20} {'speedup':>8} {'max |code diff|':>16}")
    for k in ks:
        obs, init = obs_all.select(slice(0, k)), init_all[:k]
        t0 = time.perf_counter()
        batched = fit_latents(decoder, obs, loss, latent, fit, init=init)
        t_batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        alone = [fit_latents(decoder, obs.select(slice(i, i + 1)), loss, latent, fit, init=init[i : i + 1]).codes for i in range(k)]
        t_alone = time.perf_counter() - t0
        diff = float((batched.codes - torch.cat(alone)).abs().max())
        max_diff = max(max_diff, diff)
        result[f"speedup_k{k}"] = t_alone / t_batched
        result[f"shapes_per_s_batched_k{k}"] = k / t_batched
        result[f"shapes_per_s_alone_k{k}"] = k / t_alone
        print(f"{k:>4} {k / t_batched:17.2f} {k / t_alone:20.2f} {t_alone / t_batched:7.2f}x {diff:16.2e}", flush=True)
    # the roofline: how close one shape at a time already is to this machine's best matrix product
    one = obs_all.select(slice(0, 1))
    flops = fit_flops(decoder, one, loss, latent, fit, init_all[:1])
    t0 = time.perf_counter()
    fit_latents(decoder, one, loss, latent, fit, init=init_all[:1])
    alone_gflops = flops / (time.perf_counter() - t0) / 1e9
    peak = peak_gflops()
    print(
        f"one shape's fit: {flops / 1e9:.2f} GFLOP at {alone_gflops:.1f} GFLOP/s; this machine's best matrix product: "
        f"{peak:.1f} GFLOP/s; so no batching can beat {peak / alone_gflops:.2f}x here"
    )
    result.update(peak_gflops=peak, alone_gflops=alone_gflops, speedup_bound=peak / alone_gflops)
    result.update(max_code_difference=max_diff, iterations=args.iterations, queries_per_shape=int(obs_all.queries.shape[1]), threads=torch.get_num_threads())
    finish(result)


if __name__ == "__main__":
    main()
