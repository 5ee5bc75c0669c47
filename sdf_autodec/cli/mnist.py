"""``sdf-autodec mnist``: autoencoder vs autodecoder on MNIST (library: ``sdf_autodec.images.run``)."""

from __future__ import annotations

from sdf_autodec.cli.app import hydra_app
from sdf_autodec.images.run import MnistConfig, run_mnist
from sdf_autodec.images.seeds import stats_view


def run(cfg: MnistConfig) -> None:
    results = stats_view(run_mnist(cfg))  # several seeds: each figure prints as mean ± std
    seconds = results.get("seconds", {})
    print(f"mnist: stages {', '.join(cfg.stages)} done in {seconds.get('total', 0):.0f} s; results: {cfg.output}/results.json, report: {cfg.output}/report.md")
    for size, entry in results.get("center", {}).items():
        cells = ", ".join(f"{model} {m['mse_hidden']:.4f}" for model, m in entry.items())
        print(f"  centre {size}: MSE hidden {cells}")
    for model, s in results.get("clusters", {}).items():
        print(f"  {model} codes: k-NN accuracy {s['knn_accuracy']:.3f}, silhouette {s['silhouette']:.3f}")


mnist_main = hydra_app("mnist", MnistConfig, run)
