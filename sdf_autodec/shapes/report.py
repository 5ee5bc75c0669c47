"""``sdf-autodec report``: one self-contained HTML page about a run and what was made with it.

Sections (each only where its input was given; what is missing is said, per shape, at the top):

1. the run: training shapes, epochs, budget, final losses; **training curves** (``metrics.jsonl``);
2. **dataset QA** from the data directory's manifest: every mesh ok / rejected / failed with the
   reason and its QA figures, sortable, filterable by status;
3. **per-shape metrics** (``eval``'s JSON for ``completed``, ``reconstruct``'s own report for
   ``reconstructed``) beside the references (mean shape, retrieval, oracle, scan) where scored: one
   row per shape with a thumbnail, sortable by any column, filterable by class;
4. **pictures**: the best and the worst shapes by Chamfer and a seeded random sample of the rest
   (``full_renders`` in all), each as *scan | completion | reconstruction | ground truth*, coloured
   by the distance to the ground truth (``shapes/pictures.py``);
5. the training **codes** projected on their first two principal components, coloured by class,
   with the fitted codes of ``completed`` and ``reconstructed`` over them;
6. **SDF slices** of the mean shape and a few training shapes beside their ground-truth samples;
7. the run's configuration.

Big runs stay small: the table covers every shape, but thumbnails (``thumb_size`` pixels) stop after
``thumbnails`` shapes and only ``full_renders`` shapes are drawn in full; every image is a PNG
embedded in the page (``sdf_autodec/webpage.py``), so the page needs no network and no server.
"""

from __future__ import annotations

import html
import json
import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sdf_autodec.storage.layout import DatasetLayout, read_latents, read_manifest_entries
from sdf_autodec.shapes.pictures import RenderConfig, Scene, ViewConfig, find_shapes, load_mesh, png_bytes, shape_picture
from sdf_autodec.shapes.render import Camera, Framing, Mesh, render
from sdf_autodec.webpage import Cell, Page, fmt, thumbnail

METRIC_COLUMNS = ("chamfer_x1000", "fscore@1%", "fscore@2%", "normal_consistency", "mesh_accuracy", "mesh_completion", "iou", "observed.recall@1%", "unobserved.recall@1%")


@dataclass
class ReportConfig:
    """The HTML report of a run."""

    run: str = ""
    """Run directory (checkpoints/, metrics.jsonl, train_config.json)."""
    data: str = ""
    """Optional data directory: dataset QA, ground truth of the pictures, classes of the codes, SDF samples of the slices."""
    eval: str = ""
    """Optional metrics JSON written by ``eval`` (of ``completed``'s meshes)."""
    completed: str = ""
    """Optional output folder of ``complete``."""
    reconstructed: str = ""
    """Optional output folder of ``reconstruct`` (its ``reconstruction.json`` holds its metrics)."""
    gt: str = ""
    """Ground truth of the pictures when it is not ``data`` (a DVR folder, say)."""
    output: str = "report.html"
    """The page to write."""
    title: str = ""
    """Page title (default: the run folder's name)."""
    view: ViewConfig = field(default_factory=lambda: ViewConfig(size=192))
    """Camera and size of the full pictures."""
    full_renders: int = 12
    """Shapes drawn in full: a third the best by Chamfer, a third the worst, the rest a seeded random sample."""
    thumbnails: int = 1000
    """Shapes that get a thumbnail in the metrics table (the first in table order); the rest get none."""
    thumb_size: int = 96
    """Pixels per side of a thumbnail."""
    slices: int = 2
    """Training shapes whose SDF slices are shown (besides the mean shape)."""
    seed: int = 0
    """Seed of the random sample of pictures."""


class Missing:
    """What could not be shown, per shape or section, listed at the top of the page."""

    def __init__(self):
        self.notes: list[tuple[str, str]] = []

    def add(self, what: str, why: str) -> None:
        self.notes.append((what, why))


def build_report(cfg: ReportConfig) -> dict:
    """Write ``cfg.output``; returns ``{"path", "bytes", "seconds", "shapes", "missing"}``."""
    t0 = time.perf_counter()
    run = Path(cfg.run) if cfg.run else None
    if run is None or not run.is_dir():
        raise FileNotFoundError(f"{cfg.run or '(run= not given)'}: run folder not found")
    missing = Missing()
    page = Page(cfg.title or f"sdf-autodec report: {run.resolve().name}")
    body = Page("")  # sections are built first, so that the missing list can go at the top
    model = _load_model(run, missing)
    _run_section(body, run, model, missing)
    if cfg.data:
        _qa_section(body, Path(cfg.data), missing)
    shapes = _shape_rows(cfg, missing)
    if shapes and not (cfg.gt or cfg.data):
        missing.add("ground truth", "no data= or gt=: shapes drawn without their ground truth, not coloured by distance")
    if shapes:
        _metrics_section(body, cfg, shapes, missing)
        _pictures_section(body, cfg, shapes, missing)
    else:
        missing.add("shapes", "no completed or reconstructed shapes given (completed=, reconstructed=)")
    if model is not None:
        _codes_section(body, cfg, model, missing)
        _slices_section(body, cfg, model, missing)
    _config_section(body, run)
    page.paragraph(f"Run {run}. Built {time.strftime('%Y-%m-%d %H:%M:%S')} by sdf-autodec report; every image is embedded, nothing is fetched.", "note")
    page.heading("What is missing", anchor="missing")
    if missing.notes:
        page.table(["what", "why"], [[w, y] for w, y in missing.notes], "missing-table", text_columns=("what", "why"))
    else:
        page.paragraph("Nothing: every section had what it needs.", "note")
    page.parts.extend(body.parts)
    out = page.write(Path(cfg.output))
    return {"path": str(out), "bytes": out.stat().st_size, "seconds": round(time.perf_counter() - t0, 2), "shapes": len(shapes), "missing": missing.notes}


# --- the run -------------------------------------------------------------------------------------


def _load_model(run: Path, missing: Missing):
    from sdf_autodec.shapes.train import load_trained

    try:
        return load_trained(run, "cpu")
    except Exception as e:
        missing.add("model", f"{run}: no usable checkpoint ({str(e).splitlines()[0]}): no codes, no slices")
        return None


def _run_section(page: Page, run: Path, model, missing: Missing) -> None:
    from sdf_autodec.core.rundir import read_metrics

    page.heading("The run", anchor="run")
    rows = read_metrics(run / "metrics.jsonl")
    facts = []
    if model is not None:
        facts.append(f"{len(model.ids)} training shapes, latent size {model.latent_size}, checkpoint {model.checkpoint.name}")
    budget = _read_json(run / "budget.json")
    if budget:
        facts.append(f"budget {budget.get('budget')} ({budget.get('epochs_done')} epochs in {budget.get('elapsed_seconds')} s; recipe {budget.get('recipe', {}).get('name', 'as given')})")
    if rows:
        last = rows[-1]
        facts.append(f"{last.get('epoch')} epochs logged; final loss {fmt(last.get('loss'))}, data term {fmt(last.get('data'))}")
    for f in facts:
        page.paragraph(f)
    if not rows:
        missing.add("training curves", f"{run / 'metrics.jsonl'}: absent or empty")
        return
    page.image(_training_plot(rows), "training curves", "Training loss (clamped L1 data term and the code prior) and learning rates per epoch.")


def _training_plot(rows: list[dict]) -> bytes:
    plt = _pyplot()
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    fig, (ax, lr) = plt.subplots(1, 2, figsize=(9, 3.2))
    for key, label in (("loss", "loss"), ("data", "data (clamped L1)"), ("prior", "code prior")):
        values = [r.get(key) for r in rows]
        if any(v is not None and v > 0 for v in values):
            ax.semilogy(epochs, [v if v and v > 0 else np.nan for v in values], label=label, linewidth=1)
    ax.set_xlabel("epoch")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    for key in ("lr_decoder", "lr_codes"):
        values = [r.get(key) for r in rows]
        if any(v is not None for v in values):
            lr.plot(epochs, [np.nan if v is None else v for v in values], label=key, linewidth=1)
    lr.set_xlabel("epoch")
    lr.set_yscale("log")
    lr.legend(fontsize=7)
    lr.grid(alpha=0.3)
    fig.tight_layout()
    return _figure_png(fig)


# --- dataset QA ----------------------------------------------------------------------------------


def _qa_section(page: Page, data: Path, missing: Missing) -> None:
    page.heading("Dataset QA", anchor="qa")
    entries = read_manifest_entries(DatasetLayout(data))
    if not entries:
        missing.add("dataset QA", f"{data}: no manifest.json (was it made by sdf-autodec prep?)")
        return
    counts: dict[str, int] = {}
    rows = []
    for key, e in sorted(entries.items()):
        status = str(e.get("status", "?"))
        counts[status] = counts.get(status, 0) + 1
        qa = e.get("qa", {}) or {}
        seconds = sum(v for v in (e.get("timings_s") or {}).values() if isinstance(v, (int, float)))
        rows.append([key, status, e.get("reason", ""), e.get("vertices"), e.get("faces"), qa.get("watertight"), qa.get("components"), qa.get("sign_method"), qa.get("sign_disagreement_rate"), e.get("num_pos"), e.get("num_neg"), round(seconds, 2) if seconds else None])
    page.paragraph(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + f" of {len(entries)} meshes in {data}.")
    columns = ["shape", "status", "reason", "vertices", "faces", "watertight", "components", "sign method", "sign disagreement", "outside samples", "inside samples", "seconds"]
    page.table(columns, rows, "qa-table", filter_column="status", text_columns=("shape", "status", "reason", "sign method"))


# --- shapes and their metrics ---------------------------------------------------------------------


@dataclass
class ShapeRow:
    name: str
    kind: str  # "completion" or "reconstruction"
    cls: str = ""
    mesh: Path | None = None
    scan: Path | None = None
    recon: Path | None = None
    metrics: dict = field(default_factory=dict)
    references: dict = field(default_factory=dict)  # method → Chamfer x1000
    status: str = "ok"


def _shape_rows(cfg: ReportConfig, missing: Missing) -> list[ShapeRow]:
    rows: list[ShapeRow] = []
    recon_dir = Path(cfg.reconstructed) if cfg.reconstructed else None
    if cfg.completed:
        completed = Path(cfg.completed)
        if not completed.is_dir():
            missing.add("completions", f"{completed}: folder not found")
        else:
            found = find_shapes(completed, None, recon_dir)
            report = _read_json(completed / "completion.json") or {}
            for name, entry in (report.get("scans") or {}).items():
                if entry.get("status") != "ok":
                    missing.add(name, f"no completion ({entry.get('reason', entry.get('status'))})")
            metrics = _read_json(Path(cfg.eval)) if cfg.eval else None
            if cfg.eval and metrics is None:
                missing.add("metrics", f"{cfg.eval}: unreadable or absent metrics JSON")
            elif not cfg.eval:
                missing.add("metrics", "no eval= metrics JSON: completions shown without scores")
            per_shape = (metrics or {}).get("shapes", {})
            methods = (metrics or {}).get("methods", {})
            for name, mesh, scan, recon in found:
                if mesh is None:
                    continue
                m = per_shape.get(name)
                if metrics is not None and m is None:
                    missing.add(name, "not scored in the metrics JSON (no ground truth?)")
                refs = {k: e["shapes"][name].get("chamfer_x1000") for k, e in methods.items() if k != "ours" and name in e.get("shapes", {})}
                rows.append(ShapeRow(name, "completion", (m or {}).get("class", ""), mesh, scan, recon, dict(m or {}), refs))
    if recon_dir is not None and not cfg.completed:
        report = _read_json(recon_dir / "reconstruction.json")
        if report is None:
            missing.add("reconstructions", f"{recon_dir}: no reconstruction.json")
        else:
            methods = report.get("methods", {})
            ours = methods.get("ours", {}).get("normalized", {}).get("shapes", {})
            for name, entry in sorted(report.get("shapes", {}).items()):
                if entry.get("status") != "ok":
                    missing.add(name, f"no reconstruction ({entry.get('reason', entry.get('status'))})")
                    continue
                refs = {k: e["normalized"]["shapes"][name].get("chamfer_x1000") for k, e in methods.items() if k != "ours" and name in e.get("normalized", {}).get("shapes", {})}
                mesh = Path(entry["mesh"]) if entry.get("mesh") else recon_dir / f"{name}.ply"
                rows.append(ShapeRow(name, "reconstruction", entry.get("class", ""), mesh, None, None, dict(ours.get(name, {})), refs))
            for sid, reason in (report.get("failed") or {}).items():
                missing.add(sid, str(reason))
    return rows


def _metrics_section(page: Page, cfg: ReportConfig, shapes: list[ShapeRow], missing: Missing) -> None:
    page.heading("Per-shape metrics", anchor="metrics")
    page.paragraph(
        "Chamfer ×1e-3 in DeepSDF's convention (mean squared nearest-neighbour distance each way, summed), in each shape's unit-sphere frame; "
        "F-scores at 1% and 2% of the ground truth's bounding-box diagonal. Click a header to sort, again to reverse.",
        "note",
    )
    metric_cols = [c for c in METRIC_COLUMNS if any(c in s.metrics for s in shapes)]
    ref_cols = sorted({k for s in shapes for k in s.references})
    columns = ["picture", "shape", "class", "kind", *metric_cols, *[f"{k} chamfer_x1000" for k in ref_cols]]
    scene = _scene(cfg)
    view = ViewConfig(**{**asdict(cfg.view), "size": cfg.thumb_size, "views": 1})
    rows = []
    for i, s in enumerate(shapes):
        pic: Cell | str = ""
        if i < cfg.thumbnails and s.mesh is not None:
            try:
                pic = Cell(thumbnail(_thumbnail(scene, s, view), s.name, cfg.thumb_size), None)
            except Exception as e:
                missing.add(s.name, f"thumbnail failed ({type(e).__name__}: {e})")
        rows.append([pic, s.name, s.cls, s.kind, *[s.metrics.get(c) for c in metric_cols], *[s.references.get(k) for k in ref_cols]])
    if len(shapes) > cfg.thumbnails:
        page.paragraph(f"Thumbnails for the first {cfg.thumbnails} of {len(shapes)} shapes (thumbnails=).", "note")
    summary = _summary_rows(shapes, metric_cols, ref_cols)
    if summary:
        page.heading("Medians", 3)
        page.table(["method", "shapes", "median chamfer_x1000", "mean chamfer_x1000"], summary, "summary-table", text_columns=("method",), scroll=False)
    page.heading("Every shape", 3)
    page.table(columns, rows, "metrics-table", filter_column="class", text_columns=("picture", "shape", "class", "kind"))


def _summary_rows(shapes: list[ShapeRow], metric_cols: list[str], ref_cols: list[str]) -> list[list]:
    rows = []
    ours = [s.metrics["chamfer_x1000"] for s in shapes if s.metrics.get("chamfer_x1000") is not None]
    if ours:
        rows.append(["ours", len(ours), statistics.median(ours), statistics.fmean(ours)])
    for k in ref_cols:
        v = [s.references[k] for s in shapes if s.references.get(k) is not None]
        if v:
            rows.append([k, len(v), statistics.median(v), statistics.fmean(v)])
    return rows


def _scene(cfg: ReportConfig) -> Scene:
    gt = cfg.gt or cfg.data
    return Scene(RenderConfig(input="-", output="-", gt=gt, view=cfg.view))


def _thumbnail(scene: Scene, s: ShapeRow, view: ViewConfig) -> bytes:
    mesh = load_mesh(s.mesh)
    gt = scene.ground_truth(s.name)
    vertices = scene.to_unit(mesh.vertices, scene.pred_frame, gt)
    framing = Framing.of(gt.norm.apply(gt.points)) if gt is not None else Framing.of(vertices)
    image = render([Mesh(vertices, np.asarray(mesh.faces))], Camera.orbit(framing, view.azimuth, view.elevation, view.up), view.size)
    return png_bytes(image)


def _pictures_section(page: Page, cfg: ReportConfig, shapes: list[ShapeRow], missing: Missing) -> None:
    page.heading("Pictures", anchor="pictures")
    scored = sorted((s for s in shapes if s.metrics.get("chamfer_x1000") is not None), key=lambda s: s.metrics["chamfer_x1000"])
    k = max(cfg.full_renders, 0)
    groups: list[tuple[str, list[ShapeRow]]] = []
    if scored:
        third = max(1, k // 3) if k else 0
        best = scored[:third]
        worst = [s for s in scored[::-1][:third] if s not in best]
        rest = [s for s in shapes if s not in best and s not in worst]
        sample = random.Random(cfg.seed).sample(rest, min(len(rest), max(k - len(best) - len(worst), 0)))
        groups = [("Best by Chamfer", best), ("Worst by Chamfer", worst), ("A random sample of the rest", sample)]
    else:
        groups = [("A random sample", random.Random(cfg.seed).sample(shapes, min(len(shapes), k)))]
    page.paragraph(
        f"{sum(len(g) for _, g in groups)} of {len(shapes)} shapes drawn in full (full_renders={cfg.full_renders}); each panel framed by the ground truth, "
        "meshes coloured by their distance to it (unit-sphere frame), the scan in orange and the ground-truth points it saw in orange.",
        "note",
    )
    scene = _scene(cfg)
    for title, group in groups:
        if not group:
            continue
        page.heading(title, 3)
        for s in group:
            try:
                picture, notes = shape_picture(scene, s.name, s.mesh, s.scan, s.recon, cfg.view, mesh_title="reconstruction" if s.kind == "reconstruction" else None)
                for note in notes:
                    missing.add(s.name, note)
                cd = s.metrics.get("chamfer_x1000")
                caption = f"{s.name}" + (f" ({s.cls})" if s.cls else "") + (f": Chamfer {fmt(cd)}e-3, F@1% {fmt(s.metrics.get('fscore@1%'), 3)}" if cd is not None else "")
                page.image(png_bytes(picture.image(cfg.view)), s.name, caption)
            except Exception as e:
                missing.add(s.name, f"picture failed ({type(e).__name__}: {e})")


# --- codes and slices ------------------------------------------------------------------------------


def _codes_section(page: Page, cfg: ReportConfig, model, missing: Missing) -> None:
    page.heading("Latent codes", anchor="codes")
    codes = model.latents.detach().cpu().numpy().astype(np.float64)
    if len(codes) < 3:
        missing.add("codes", f"only {len(codes)} training codes: no projection")
        return
    classes = _classes_of(cfg, model.ids)
    fitted: list[tuple[str, np.ndarray]] = []
    for label, folder in (("completed", cfg.completed), ("reconstructed", cfg.reconstructed)):
        if folder and (Path(folder) / "latents.npz").is_file():
            try:
                _, z = read_latents(Path(folder) / "latents.npz")
                if z.shape[1] == codes.shape[1]:
                    fitted.append((label, z.astype(np.float64)))
            except Exception as e:
                missing.add(f"{label} codes", str(e))
    mean = codes.mean(axis=0)
    _, s, vt = np.linalg.svd(codes - mean, full_matrices=False)
    explained = s[:2] ** 2 / max((s**2).sum(), 1e-12)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    proj = (codes - mean) @ vt[:2].T
    for c in sorted(set(classes)):
        mine = [i for i, k in enumerate(classes) if k == c]
        ax.scatter(proj[mine, 0], proj[mine, 1], s=14, label=c or "(no class)", alpha=0.8)
    for (label, z), marker in zip(fitted, ("x", "+")):
        p = (z - mean) @ vt[:2].T
        ax.scatter(p[:, 0], p[:, 1], s=30, marker=marker, color="black", label=f"{label} (fitted)")
    ax.scatter([(-mean) @ vt[0]], [(-mean) @ vt[1]], s=60, marker="*", color="red", label="zero code (mean shape)")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%})" if len(explained) > 1 else "PC 2")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    norms = np.linalg.norm(codes, axis=1)
    page.image(_figure_png(fig), "codes PCA", f"{len(codes)} training codes on their first two principal components; norms {norms.min():.2f}-{norms.max():.2f}.")


def _classes_of(cfg: ReportConfig, ids: list[str]) -> list[str]:
    if not cfg.data:
        return [""] * len(ids)
    from sdf_autodec.shapes.ground_truth import ground_truth_keys

    try:
        keys = ground_truth_keys(Path(cfg.data))
    except Exception:
        return [""] * len(ids)
    return [keys[i].cls if i in keys else "" for i in ids]


def _slices_section(page: Page, cfg: ReportConfig, model, missing: Missing) -> None:
    from sdf_autodec.shapes.slices import ground_truth_samples, model_slices

    page.heading("SDF slices", anchor="slices")
    clamp = float(model.config.get("clamp", 0.1))
    page.paragraph(f"The decoder's SDF on the planes x, y, z = 0 of the model's frame (blue inside, red outside; solid: the surface; dashed: the clamp band ±{clamp:g}), under each the ground truth's own SDF samples near the plane.", "note")
    samples_of = lambda name: None  # noqa: E731
    if cfg.data:
        try:
            samples_of = ground_truth_samples(cfg.data)
        except Exception as e:
            missing.add("slices", f"no ground-truth samples ({e})")
    for name in ["mean", *model.ids[: max(cfg.slices, 0)]]:
        try:
            label = "mean shape (zero code)" if name == "mean" else f"decoder: {name}"
            page.image(png_bytes(model_slices(model, name, samples_of(name), resolution=96)), f"slices {name}", label)
        except Exception as e:
            missing.add(f"slices of {name}", f"{type(e).__name__}: {e}")


def _config_section(page: Page, run: Path) -> None:
    page.heading("Configuration", anchor="config")
    for name in ("train_config.json", "budget.json"):
        data = _read_json(run / name)
        if data is not None:
            page.raw(f"<h3>{html.escape(name)}</h3>")
            page.preformatted(json.dumps(data, indent=2))


# --- small helpers ---------------------------------------------------------------------------------


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure_png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    _pyplot().close(fig)
    return buf.getvalue()

