"""What the MNIST study writes: PNG figures, ``results.json``, ``report.md`` and ``report.html``.

``results.json`` is read and updated by each stage (written atomically, strict JSON: no NaN). Its
required shape, for scripts::

    {"center": {"8": {"ae_masked_input": M, "ae_masked_loss": M, "ad": M}, "12": ..., "16": ..., "20": ...},
     "random50": {"ae": M, "ad": M}, "top_half": {"ae": M, "ad": M},
     "clusters": {"ae": {...}, "ad": {...}}}

with ``M = {"mse_hidden", "psnr_hidden", "mse_whole", "psnr_whole"}``; other keys are added
(``full``, ``training``, ``seconds``, ``notes``, ``config``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from sdf_autodec.atomic import atomic_write
from sdf_autodec.images.seeds import stats_view
from sdf_autodec.webpage import Page

HIDDEN_TINT = (0.15, 0.3, 0.75)
"""RGB of hidden pixels in the figures' input columns."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    _plt().close(fig)


def _clean(value):
    """Plain JSON types; non-finite floats become None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    return value


def read_results(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); remove it to start afresh") from None


def update_results(path: str | Path, parts: dict) -> dict:
    """Merge ``parts`` (top-level keys) into ``results.json`` and write it atomically; returns the whole."""
    results = read_results(path)
    results.update(_clean(parts))
    text = json.dumps(results, indent=2, allow_nan=False)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    return results


def _rgb(images: torch.Tensor, masks: torch.Tensor | None = None) -> np.ndarray:
    """``(n, 1, S, S)`` → ``(n, S, S, 3)`` in [0, 1]; pixels where ``masks`` is 0 get :data:`HIDDEN_TINT`."""
    gray = images.detach().clamp(0, 1)[:, 0].cpu().numpy()
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if masks is not None:
        hidden = (masks.expand_as(images)[:, 0] < 0.5).cpu().numpy()
        rgb[hidden] = HIDDEN_TINT
    return rgb


def _mosaic(cells: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    """Tile ``cells[row][col]: (S, S, 3)`` into one ``(H, W, 3)`` image with ``pad`` white pixels between cells."""
    s = cells[0][0].shape[0]
    rows, cols = len(cells), len(cells[0])
    out = np.ones((rows * (s + pad) + pad, cols * (s + pad) + pad, 3))
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            y, x = pad + i * (s + pad), pad + j * (s + pad)
            out[y : y + s, x : x + s] = cell
    return out


def _draw_mosaic(path: Path, cells: list[list[np.ndarray]], column_titles: list[str], row_titles: list[str] | None = None, title: str = "") -> None:
    """One image of all cells (one imshow: fast), titled per column and optionally per row."""
    plt = _plt()
    pad, s = 2, cells[0][0].shape[0]
    mosaic = _mosaic(cells, pad)
    scale = 1.1 / (s + pad)  # inches per pixel: 1.1 inch per cell
    left = 0.9 if row_titles else 0.1
    width, height = mosaic.shape[1] * scale + left + 0.1, mosaic.shape[0] * scale + 0.75
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes([left / width, 0.1 / height, mosaic.shape[1] * scale / width, mosaic.shape[0] * scale / height])
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    for j, name in enumerate(column_titles):
        ax.text(pad + j * (s + pad) + s / 2, -1, name, ha="center", va="bottom", fontsize=7)
    for i, name in enumerate(row_titles or []):
        ax.text(-2, pad + i * (s + pad) + s / 2, name, ha="right", va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.12 / height, va="top")
    _save(fig, path)


def image_grid(path: Path, columns: list[tuple[str, torch.Tensor, torch.Tensor | None]], title: str = "") -> None:
    """One row per image, one column per ``(title, images: (n, 1, S, S), masks or None)``."""
    rgb = [_rgb(images, masks) for _, images, masks in columns]
    cells = [[rgb[j][i] for j in range(len(columns))] for i in range(len(rgb[0]))]
    _draw_mosaic(path, cells, [name for name, _, _ in columns], title=title)


def completion_figure(path: Path, name: str, truth: torch.Tensor, masks: torch.Tensor, inputs: dict, outputs: dict) -> None:
    """Input, output and truth of every model of one experiment, for ``truth: (n, 1, S, S)``."""
    columns = []
    for model in outputs:
        shown_masks = None if inputs[model] is truth or torch.equal(inputs[model], truth) else masks
        columns.append((f"{model}\ninput", inputs[model], shown_masks))
        columns.append((f"{model}\noutput", outputs[model], None))
    columns.append(("truth", truth, None))
    image_grid(path, columns, title=f"{name}: hidden pixels in blue")


def loss_figure(path: Path, training: dict) -> None:
    """Train and validation reconstruction MSE per epoch of the AE and the AD (log scale)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    styles = {"ae": "tab:orange", "ad": "tab:blue"}
    for model, color in styles.items():
        hist = training.get(model, {}).get("history", [])
        if not hist:
            continue
        epochs = [r["epoch"] for r in hist]
        ax.semilogy(epochs, [r["train"] for r in hist], color=color, label=f"{model.upper()} train")
        val = [(r["epoch"], r["val"]) for r in hist if r.get("val") is not None and math.isfinite(r["val"])]
        label = f"{model.upper()} validation" + (" (codes fitted, decoder frozen)" if model == "ad" else "")
        ax.semilogy([e for e, _ in val], [v for _, v in val], "o--", color=color, label=label)
        unfitted = [(r["epoch"], r["val_unfitted"]) for r in hist if r.get("val_unfitted") is not None and math.isfinite(r["val_unfitted"])]
        if unfitted:
            ax.semilogy([e for e, _ in unfitted], [v for _, v in unfitted], "x:", color=color, label=f"{model.upper()} validation, random codes never fitted")
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction MSE per pixel")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def tsne_figure(path: Path, embeddings: dict[str, np.ndarray], labels: np.ndarray | dict[str, np.ndarray], scores: dict[str, dict]) -> None:
    """Side-by-side t-SNE maps coloured by digit (``labels``: one array for every map, or one per map),
    with each map's cluster scores in its title (those it has)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(embeddings), figsize=(5 * len(embeddings), 4.8), squeeze=False)
    for ax, (name, xy) in zip(axes[0], embeddings.items()):
        colours = labels[name] if isinstance(labels, dict) else labels
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=colours, cmap="tab10", s=5, vmin=-0.5, vmax=9.5)
        s = scores.get(name, {})
        parts = [f"{label} {s[key]:.3f}" for key, label in (("knn_accuracy", "k-NN acc"), ("silhouette", "silhouette")) if key in s]
        ax.set_title(f"{name.upper() if ' ' not in name else name}: " + ", ".join(parts), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes[0].tolist(), ticks=range(10), label="digit")
    _save(fig, path)


def progress_figure(path: Path, snapshots: dict[int, torch.Tensor], truth: torch.Tensor) -> None:
    """Rows: the AD's reconstructions of tracked training images after each recorded epoch, then the truth."""
    rows = [(f"epoch {e}", snapshots[e]) for e in sorted(snapshots)] + [("truth", truth)]
    cells = [list(_rgb(images)) for _, images in rows]
    _draw_mosaic(path, cells, [""] * truth.shape[0], [name for name, _ in rows], title="autodecoder: training images across epochs")


def interpolation_figure(path: Path, strips: dict[str, torch.Tensor], alphas: list[float], title: str, ends: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
    """``strips[model]: (P, A, 1, S, S)`` decoded interpolations; rows = pairs x models, columns = α.

    ``ends``: the two images of each pair, ``(P, 1, S, S)`` each, shown before and after the strip."""
    models = list(strips)
    pairs = strips[models[0]].shape[0]
    cells, names = [], []
    for p in range(pairs):
        for model in models:
            row = list(_rgb(strips[model][p]))
            if ends is not None:
                row = [_rgb(ends[0][p : p + 1])[0], *row, _rgb(ends[1][p : p + 1])[0]]
            cells.append(row)
            names.append(f"pair {p + 1}, {model.upper()}")
    columns = [f"α={a:.2g}" for a in alphas]
    if ends is not None:
        columns = ["image A", *columns, "image B"]
    _draw_mosaic(path, cells, columns, names, title=title)


def _m(entry: dict | None, key: str, fmt: str) -> str:
    if not entry or entry.get(key) is None:
        return "–"
    return format(entry[key], fmt)


SKIP = ("center", "clusters", "full", "training", "seconds", "notes", "config", "interpolation", "classifier", "collapse", "capacity", "generalisation", "generation", "inference_cost")
"""Keys of ``results.json`` that are not masked-completion experiments."""


def _winners(results: dict, key: str = "mse_hidden", best=min) -> dict[str, str]:
    """Experiment → the model with the best ``key`` (``min`` for an error, ``max`` for an accuracy)."""
    experiments = {f"centre {k}": v for k, v in results.get("center", {}).items()}
    experiments.update({k: v for k, v in results.items() if k not in SKIP and isinstance(v, dict)})
    winners = {}
    for name, entry in experiments.items():
        scored = {m: s[key] for m, s in entry.items() if isinstance(s, dict) and s.get(key) is not None}
        if scored:
            winners[name] = best(scored, key=scored.get)
    return winners


def _sections(results: dict) -> list[tuple[str, list[str], list[str], list[list[str]]]]:
    """The report's tables, once for both pages: ``(title, paragraphs, columns, rows)``."""
    sections = []
    cfg = results.get("config", {})
    data = cfg.get("data", {})
    intro = []
    if data:
        intro.append(
            f"Training images: {data.get('train_size')} (both models), validation: {data.get('val_size')}, "
            f"test: {data.get('test_size')} (MNIST test file), padded to {data.get('image_size')} x {data.get('image_size')}. "
            f"Latent size {cfg.get('net', {}).get('latent_size')} for both models. MSE per pixel on [0, 1] "
            "(outputs clamped), PSNR = 10 log10(1 / MSE) of the mean MSE."
        )
    sections.append(("", intro, [], []))
    rows = []

    def row(experiment: str, model: str, m: dict, hidden: bool = True) -> list[str]:
        masked = [_m(m, "mse_hidden", ".4f"), _m(m, "psnr_hidden", ".2f")] if hidden else ["–", "–"]
        return [experiment, model, *masked, _m(m, "mse_whole", ".4f"), _m(m, "psnr_whole", ".2f"), _m(m, "digit_accuracy", ".3f")]

    for size, entry in results.get("center", {}).items():
        rows += [row(f"centre {size}x{size}", model, m) for model, m in entry.items()]
    for name in [k for k in results if k not in SKIP and isinstance(results[k], dict)]:
        rows += [row(name, model, m) for model, m in results[name].items() if isinstance(m, dict)]
    rows += [row("nothing hidden", model, m, hidden=False) for model, m in results.get("full", {}).items()]
    if rows:
        paragraphs = []
        classifier = results.get("classifier", {})
        if classifier:
            paragraphs.append(
                f"Digit accuracy: a fixed classifier (trained once on {classifier.get('train_images')} MNIST training images, "
                f"{classifier.get('epochs')} epochs) labels the completions; on the {classifier.get('test_images')} real test images "
                f"it scores {_m(classifier, 'test_accuracy', '.4f')}, the ceiling of that column."
            )
        for label, winners in (("Lowest MSE on the hidden pixels", _winners(results)), ("Highest digit accuracy", _winners(results, "digit_accuracy", max))):
            if winners:
                paragraphs.append(f"{label}: " + "; ".join(f"{name}: **{model}**" for name, model in winners.items()) + ".")
        paragraphs += [f"- **{k}**: {v}" for k, v in results.get("notes", {}).items()]
        columns = ["experiment", "model", "MSE hidden", "PSNR hidden (dB)", "MSE whole", "PSNR whole (dB)", "digit accuracy"]
        sections.append(("Masked completion", paragraphs, columns, rows))
    cost = results.get("inference_cost", {})
    if cost.get("ad"):
        ae = cost["ae"]
        rows = [["AE (encoder, masked input)", "–", _m(ae, "ms_per_image", ".3f"), _m(ae, "mse_hidden", ".4f")]]
        rows += [["AD (fitted)", str(r["iterations"]), _m(r, "ms_per_image", ".2f"), _m(r, "mse_hidden", ".4f")] for r in cost["ad"]]
        sections.append(("Inference cost", [
            f"Milliseconds per test image on this machine ({cost.get('device')}, {cost.get('threads')} threads; the AD fits {cost.get('batch')} images per batch), "
            f"and the hidden-pixel MSE with the {cost.get('mask')} mask."], ["model", "fitting iterations", "ms per image", "MSE hidden"], rows))
    midpoint = results.get("interpolation", {}).get("midpoint", {})
    if midpoint.get("ae"):
        rows = [[m, _m(midpoint[m], "mse_to_pixel_average", ".4f"), _m(midpoint[m], "mse_to_nearer_end", ".4f"), _m(midpoint[m], "confidence", ".3f")] for m in ("ae", "ad")]
        rows.append(["pixel average (x_A + x_B) / 2", "0", "–", _m(midpoint["pixel_average"], "confidence", ".3f")])
        nearer = min(("ae", "ad"), key=lambda m: midpoint[m]["mse_to_pixel_average"])
        sections.append(("Is the interpolation midpoint the pixel average?", [
            f"Decoded midpoints of the codes of {midpoint.get('pairs')} pairs of test images of different digits. "
            f"Nearer the pixel average: **{nearer}**; the classifier's confidence says how digit-like each midpoint is."],
            ["midpoint of", "MSE to pixel average", "MSE to the nearer end image", "classifier confidence"], rows))
    general = results.get("generalisation", {})
    if general.get("mse"):
        sets = list(next(iter(general["mse"].values())))
        rows = [[model, *[_m(mse, s, ".4f") for s in sets]] for model, mse in general["mse"].items()]
        ratio = [f"{model}: {mse[sets[1]] / mse[sets[0]]:.2f}x on the unseen digits, {mse[sets[2]] / mse[sets[0]]:.2f}x on the shifted domain"
                 for model, mse in general["mse"].items() if len(sets) == 3 and mse[sets[0]] > 0]
        sections.append(("Generalisation: trained on the digits 0-4", [
            f"Both models trained on the {general.get('trained_on')} training images of the digits 0-4 only; the AE encodes each test image, "
            "the AD fits its code with the decoder frozen. Reconstruction MSE per set; out-of-distribution error over in-distribution error: " + "; ".join(ratio) + "."],
            ["model", *sets], rows))
    generation = results.get("generation", {})
    if generation.get("scores"):
        rows = [[name, _m(s, "confidence_mean", ".3f"), str(s.get("classes_seen", "–")), _m(s, "nearest_train_mse_median", ".4f"),
                 " ".join(f"{v:.2f}" for v in s.get("class_share", []))] for name, s in generation["scores"].items()]
        sections.append(("Generation: decoded draws from the training codes' Gaussian", [
            f"{generation.get('samples')} codes per model drawn from a Gaussian (mean, full covariance) fitted to its training codes, decoded; "
            "the real test images are the reference. Nearest-training-image MSE far below the test images' would mean copies."],
            ["images", "classifier confidence", "digits seen (>= 1%)", "nearest training image (median MSE)", "share labelled 0 ... 9"], rows))
    collapse = results.get("collapse", {})
    if collapse.get("rows"):
        sections.append(_collapse_section(collapse))
    capacity = results.get("capacity", {})
    if capacity.get("cells"):
        sections.append(_capacity_section(capacity))
    clusters = results.get("clusters", {})
    if clusters:
        rows = [[model, _m(c, "knn_accuracy", ".3f"), _m(c, "silhouette", ".3f"), _m(c, "silhouette_train", ".3f")] for model, c in clusters.items()]
        sections.append(("Latent spaces", [], ["model", "k-NN accuracy (test codes)", "silhouette (test codes)", "silhouette (training codes)"], rows))
    training = results.get("training", {})
    if training:
        rows = []
        for model, t in training.items():
            hist = t.get("history", [])
            vals = [r["val"] for r in hist if r.get("val") is not None]
            rows.append([model, str(len(hist)), f"{hist[-1]['train']:.4f}", f"{vals[-1]:.4f}", f"{t.get('seconds', 0):.0f}"] if hist and vals else [model, "0", "–", "–", "–"])
        seconds = results.get("seconds", {})
        order = sorted(seconds, key=lambda k: k == "total")  # stages as recorded, the total last
        wall = ["Wall time per stage (s): " + ", ".join(f"{k} {seconds[k]:.1f}" for k in order)] if seconds else []
        sections.append(("Training", wall, ["model", "epochs", "final train MSE", "final validation MSE", "seconds"], rows))
    return sections


def _collapse_section(collapse: dict) -> tuple[str, list[str], list[str], list[list[str]]]:
    """The collapse table and what its numbers say (``images.collapse``)."""
    rows_in = collapse["rows"]
    rows = [[name, _m(r["train"], "mse_truth", ".4f"), _m(r["test"], "mse_truth", ".4f"), _m(r["test"], "mse_global_mean", ".4f"),
             _m(r["test"], "mse_class_mean", ".4f"), _m(r["test"], "output_variance", ".2e")] for name, r in rows_in.items()]
    paragraphs = [f"Decoders trained {collapse.get('epochs')} epochs each; MSE per pixel, outputs clamped to [0, 1]; "
                  "'to global / class mean' compare the test outputs with the mean training image and with the mean training image of each image's digit."]

    def test(name: str, key: str) -> float | None:
        return rows_in.get(name, {}).get("test", {}).get(key)

    def g(x: float | None) -> str:
        return "–" if x is None else format(x, ".3g")

    ad_var = test("ad", "output_variance")
    for name in ("noise", "ae_zero_input_on_zeros"):
        var, to_mean = test(name, "output_variance"), test(name, "mse_global_mean")
        if var is not None and ad_var:
            verdict = "collapsed: one image for all" if var < 0.05 * ad_var else "not collapsed"
            paragraphs.append(f"- **{name}**: output variance {g(var)} against the AD's {g(ad_var)}, {g(to_mean)} from the global mean image: {verdict}.")
    to_class, to_global = test("onehot_noise", "mse_class_mean"), test("onehot_noise", "mse_global_mean")
    if to_class is not None:
        verdict = ("nearer its class mean than the global mean, as the optimum for a label (the class mean) predicts" if to_class < to_global
                   else "not nearer its class mean than the global mean: short of the class-mean optimum")
        paragraphs.append(f"- **onehot_noise**: {g(to_class)} from each digit's class mean, {g(to_global)} from the global mean: {verdict}.")
    for name in ("fixed_random", "ad"):
        if name in rows_in:
            r = rows_in[name]
            paragraphs.append(f"- **{name}**: MSE to the truth {g(r['train']['mse_truth'])} on the training images, {g(r['test']['mse_truth'])} on the test images "
                              f"(codes fitted with the decoder frozen), output variance {g(r['test']['output_variance'])}.")
    for name, note in collapse.get("notes", {}).items():
        paragraphs.append(f"- *{name}*: {note}")
    return ("Do uninformative inputs collapse to the mean?", paragraphs,
            ["row", "MSE to truth (train)", "MSE to truth (test)", "to global mean (test)", "to class mean (test)", "output variance (test)"], rows)


def _capacity_section(capacity: dict) -> tuple[str, list[str], list[str], list[list[str]]]:
    """The decoder-capacity grid (``images.capacity``) and, per model and latent size, which decoder gave the best probe."""
    cells = capacity["cells"]
    rows = [[c["model"], c["decoder"], str(c["latent_size"]), _m(c, "mse_test", ".4f"), _m(c, "probe_accuracy", ".3f"), _m(c, "probe_accuracy_few", ".3f"),
             _m(c, "knn_accuracy", ".3f"), _m(c, "transfer_accuracy", ".3f"), _m(c, "seconds", ".0f")] for c in cells.values()]
    paragraphs = []
    for model in ("ae", "ad"):
        for latent in sorted({c["latent_size"] for c in cells.values()}):
            group = [c for c in cells.values() if c["model"] == model and c["latent_size"] == latent]
            if len(group) > 1:
                best = max(group, key=lambda c: c["probe_accuracy"])
                sharpest = min(group, key=lambda c: c["mse_test"])
                paragraphs.append(f"- **{model}, latent {latent}**: best linear probe with the **{best['decoder']}** decoder ({best['probe_accuracy']:.3f}); "
                                  f"lowest test MSE with the {sharpest['decoder']} decoder ({sharpest['mse_test']:.4f}).")
    return ("Decoder capacity and the quality of the codes", paragraphs,
            ["model", "decoder", "latent", "MSE test", "linear probe", f"probe, {capacity.get('config', {}).get('few', '?')} labels", "5-NN", "transfer 0-4 → 5-9", "seconds"], rows)


def write_report(path: Path, results: dict, figures: list[str]) -> None:
    """``report.md`` and, beside it, ``report.html`` (self-contained: the figures embedded): the
    tables of ``results`` and the figures (paths relative to the report)."""
    title = "Autoencoder vs autodecoder on MNIST"
    lines = [f"# {title}", ""]
    if results.get("seeds"):  # several seeds: every figure shows as mean ± std
        lines += [f"Every figure: mean ± sample standard deviation over the seeds {results['seeds']}.", ""]
        results = stats_view(results)
    page = Page(title)
    for name, paragraphs, columns, rows in _sections(results):
        if name:
            lines += [f"## {name}", ""]
            page.heading(name)
        if columns:
            lines += ["| " + " | ".join(columns) + " |", "|---|---|" + "---:|" * (len(columns) - 2)]
            lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
            page.table(columns, rows, name.lower().replace(" ", "-"), text_columns=tuple(columns[:2]), scroll=False)
        for text in paragraphs:
            lines += [text, ""] if not text.startswith("- ") else [text]
            page.paragraph(text.replace("**", "").removeprefix("- "))
        if paragraphs and paragraphs[-1].startswith("- "):
            lines.append("")
    if figures:
        lines += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
        page.heading("Figures")
        for f in figures:
            figure = path.parent / f
            if figure.is_file():
                page.image(figure.read_bytes(), Path(f).stem, Path(f).stem)
            else:
                page.paragraph(f"{f}: figure missing", "missing")
    text = "\n".join(lines)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    page.write(path.with_suffix(".html"))
