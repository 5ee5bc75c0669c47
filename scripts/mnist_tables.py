"""The README's MNIST tables, printed from a stored ``results.json`` (so every figure there traces to it).

    .venv/bin/python scripts/mnist_tables.py results/mnist/results.json

Bold: the best of each mask (lowest hidden-pixel MSE, highest digit accuracy). With several seeds
(``seeds=[...]``) each figure prints as mean ± std.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sdf_autodec.images.report import read_results  # noqa: E402
from sdf_autodec.images.seeds import stats_view  # noqa: E402

NAMES = {
    "ae_masked_input": "AE fed the masked image",
    "ae_masked_loss": "AE trained ignoring the square (the study's)",
    "ae": "AE trained with such masks on its input",
    "ae_mask_trained": "AE trained with this mask on its input",
    "ae_equal_time": "AE at the AD's wall time, fed the masked image",
    "mean_fill": "mean training image filled in",
    "retrieval": "nearest training image on the visible pixels",
    "ad": "AD (code fitted to the visible pixels)",
}

FULL_NAMES = {"ae": "AE", "ad": "AD (code fitted to the image)", "ae_equal_time": "AE at the AD's wall time"}


def completion_table(results: dict) -> list[str]:
    lines = ["| hidden | method | MSE hidden | digit accuracy |", "|---|---|---:|---:|"]
    experiments = [(f"centre {k}x{k}", v) for k, v in results.get("center", {}).items()]
    experiments += [(name, results[name]) for name in ("random50", "top_half") if name in results]
    for label, entry in experiments:
        methods = {m: s for m, s in entry.items() if isinstance(s, dict) and not (m == "ae" and "ae_mask_trained" in entry)}
        best_mse = min(methods, key=lambda m: methods[m]["mse_hidden"])
        best_acc = max(methods, key=lambda m: methods[m].get("digit_accuracy", -1))
        for i, (m, s) in enumerate(methods.items()):
            mse, acc = f"{s['mse_hidden']:.4f}", f"{s.get('digit_accuracy', float('nan')):.3f}"
            lines.append(f"| {label if i == 0 else ''} | {NAMES.get(m, m)} | {'**' + mse + '**' if m == best_mse else mse} | {'**' + acc + '**' if m == best_acc else acc} |")
    full = results.get("full", {})
    for i, (m, s) in enumerate(full.items()):
        lines.append(f"| {'nothing (reconstruction MSE)' if i == 0 else ''} | {FULL_NAMES.get(m, m)} | {s['mse_whole']:.4f} | {s.get('digit_accuracy', float('nan')):.3f} |")
    return lines


def collapse_table(results: dict) -> list[str]:
    rows = results.get("collapse", {}).get("rows", {})
    lines = ["| row | MSE to truth, train | MSE to truth, test | to global mean | to class mean | output variance |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        t = r["test"]
        lines.append(f"| {name} | {r['train']['mse_truth']:.4f} | {t['mse_truth']:.4f} | {t['mse_global_mean']:.4f} | {t['mse_class_mean']:.4f} | {t['output_variance']:.5f} |")
    return lines


def other_tables(results: dict) -> list[str]:
    lines = []
    g = results.get("generalisation", {}).get("mse")
    if g:
        sets = list(next(iter(g.values())))
        lines += ["| trained on 0-4 | " + " | ".join(sets) + " |", "|---|" + "---:|" * len(sets)]
        lines += [f"| {m} | " + " | ".join(f"{v[s]:.4f}" for s in sets) + " |" for m, v in g.items()]
        lines.append("")
    gen = results.get("generation", {}).get("scores")
    if gen:
        lines += ["| images | classifier confidence | digits seen | nearest training image (median MSE) |", "|---|---:|---:|---:|"]
        lines += [f"| {m} | {s['confidence_mean']:.3f} | {s['classes_seen']} | {s['nearest_train_mse_median']:.4f} |" for m, s in gen.items()]
        lines.append("")
    mid = results.get("interpolation", {}).get("midpoint")
    if mid:
        lines += ["| midpoint of | MSE to pixel average | MSE to nearer end | classifier confidence |", "|---|---:|---:|---:|"]
        lines += [f"| {m} | {mid[m]['mse_to_pixel_average']:.4f} | {mid[m]['mse_to_nearer_end']:.4f} | {mid[m]['confidence']:.3f} |" for m in ("ae", "ad")]
        lines.append(f"| pixel average | 0 | – | {mid['pixel_average']['confidence']:.3f} |")
        lines.append("")
    cost = results.get("inference_cost")
    if cost:
        lines += ["| model | iterations | ms per image | MSE hidden |", "|---|---:|---:|---:|"]
        lines.append(f"| AE | – | {cost['ae']['ms_per_image']:.3f} | {cost['ae']['mse_hidden']:.4f} |")
        lines += [f"| AD | {r['iterations']} | {r['ms_per_image']:.2f} | {r['mse_hidden']:.4f} |" for r in cost["ad"]]
    return lines


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    results = stats_view(read_results(sys.argv[1]))
    if not results:
        sys.exit(f"{sys.argv[1]}: no results")
    c = results.get("classifier", {})
    if c:
        print(f"classifier: {c['test_accuracy']:.4f} on {c['test_images']} test images ({c['train_images']} training images, {c['epochs']} epochs)\n")
    for table in (completion_table(results), [""], collapse_table(results), [""], other_tables(results)):
        print("\n".join(table))


if __name__ == "__main__":
    main()
