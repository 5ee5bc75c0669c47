"""``sdf-autodec render``: meshes and scans → PNG pictures that compare across methods.

For each shape, one picture: a grid whose columns are *input scan | completion | reconstruction |
ground truth* (those that exist) and whose rows are ``views`` views around the object. Every panel
of a shape is framed by the same sphere (the ground truth's, else the first panel's) and lit by the
same light (``shapes/render.py``). Everything is drawn in DeepSDF's unit-sphere frame of the shape
(the evaluation frame of ``eval``), so the colour bar of a completion coloured by its distance to
the ground truth reads in those units. The observed part is marked: the scan in orange over the
completion, and the ground-truth points the scan saw in orange in the ground-truth panel.

What ``input`` may be:

- an output folder of ``complete`` (``completion.json`` names each completion's scan) or of
  ``reconstruct``, or any folder of meshes: one picture per mesh (``references/`` left out);
- a folder of scans only: one picture per scan;
- one mesh or scan file.

Writes ``OUTPUT/<stem>.png`` and ``OUTPUT/render.json`` (per shape: the picture, or why there is none).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from sdf_autodec.atomic import atomic_write
from sdf_autodec.storage.layout import write_json
from sdf_autodec.shapes.evaluate import find_scan_files
from sdf_autodec.storage.layout import MESH_SUFFIXES
from sdf_autodec.shapes.ground_truth import GroundTruth, GroundTruthSource, detect_format, to_frame
from sdf_autodec.shapes.metrics import OBSERVED_RADIUS, observed_mask
from sdf_autodec.shapes.references import REFERENCES
from sdf_autodec.shapes.render import DISTANCE_CMAP, GT_COLOR, SCAN_COLOR, Camera, Framing, Mesh, Points, render
from sdf_autodec.shapes.scans import SCAN_SUFFIXES, ScanError, read_scan


@dataclass
class ViewConfig:
    """How each shape is looked at (shared by ``render`` and ``report``)."""

    size: int = 256
    """Pixels per side of each panel."""
    views: int = 1
    """Views per shape, evenly spaced in azimuth around the up axis."""
    azimuth: float = 30.0
    """Azimuth of the first view, degrees (0: looking from +z, ShapeNet's front)."""
    elevation: float = 20.0
    """Elevation of every view above the horizontal plane, degrees."""
    up: str = "y"
    """The up axis of the frame: x, y or z (ShapeNet, DVR and DeepSDF: y)."""
    max_distance: float = 0.05
    """Top of the distance colour bar (unit-sphere frame): a completion point this far from the ground truth or farther is yellow."""

    def cameras(self, framing: Framing) -> list[Camera]:
        return [Camera.orbit(framing, self.azimuth + 360.0 * i / self.views, self.elevation, self.up) for i in range(self.views)]


@dataclass
class RenderConfig:
    """Pictures of meshes and scans, with their ground truth when there is one."""

    input: str = ""
    """A mesh or scan file, or a folder of them (an output folder of ``complete`` or ``reconstruct`` included)."""
    output: str = ""
    """Folder for the PNGs and ``render.json``."""
    gt: str = ""
    """Optional ground truth (a data directory or a DVR folder): adds its column and colours meshes by their distance to it."""
    gt_format: str = "auto"
    """``data``, ``dvr`` or ``auto``, as in ``eval``."""
    scans: str = ""
    """Optional folder of the partial scans (``<mesh stem>.npz/.ply``); by default the scans ``completion.json`` names."""
    reconstructed: str = ""
    """Optional output folder of ``reconstruct``: adds the reconstruction column (``<shape id>.ply``)."""
    pred_frame: str = "auto"
    """Frame of the meshes: ``normalized`` (the model's), ``source`` or ``auto`` (as ``eval``: normalized for ``data``, source for ``dvr``; normalized without ``gt``)."""
    scan_frame: str = "auto"
    """Frame of the scans, as ``pred_frame``."""
    view: ViewConfig = field(default_factory=ViewConfig)
    """Picture size, views and camera."""
    sheet: str = ""
    """Optional PNG path: also one picture of ``sheet_shapes`` shapes stacked (spread evenly over the sorted names)."""
    sheet_shapes: int = 4
    """Shapes on the ``sheet``."""
    run: str = ""
    """With a run directory instead of ``input``: SDF slices of its codes (``ids``) through x, y, z = 0."""
    ids: list[str] = field(default_factory=lambda: ["mean"])
    """Training shape ids whose codes are sliced; ``mean`` is the zero code (the mean shape)."""
    data: str = ""
    """With ``run``: the data directory, to add each shape's ground-truth slices from its SDF samples."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class Panel:
    """One column of a shape's picture: a title and what is drawn in it (in the unit-sphere frame)."""

    title: str
    items: list


@dataclass
class ShapePicture:
    """What one shape's picture shows; ``framing`` is shared by all its panels."""

    name: str
    panels: list[Panel]
    framing: Framing
    distance_bar: float | None = None  # the colour bar's top (unit-sphere frame), when meshes are coloured by distance

    def image(self, view: ViewConfig) -> np.ndarray:
        """``(H, W, 3)`` uint8: the panels side by side, one row per view, titles on top, colour bar at the right."""
        from PIL import Image, ImageDraw

        cams = view.cameras(self.framing)
        s = view.size
        title_h = max(14, s // 12)
        bar_w = max(76, s // 3) if self.distance_bar else 0
        canvas = Image.new("RGB", (s * len(self.panels) + bar_w, title_h + s * len(cams)), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        font = _font(max(10, title_h - 4))
        for j, panel in enumerate(self.panels):
            draw.text((j * s + 4, 1), panel.title, fill=(30, 30, 30), font=font)
            for i, cam in enumerate(cams):
                canvas.paste(Image.fromarray(render(panel.items, cam, s)), (j * s, title_h + i * s))
        if self.distance_bar:
            _colour_bar(canvas, (s * len(self.panels) + 6, title_h + 8), bar_w - 6, s * len(cams) - 26, self.distance_bar, font)
        return np.asarray(canvas)


def load_mesh(path: Path) -> trimesh.Trimesh:
    """A mesh file as one ``Trimesh`` (scenes merged); raises ``ValueError`` naming the file when it has no triangles."""
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as e:
        raise ValueError(f"{path}: unreadable mesh ({type(e).__name__}: {e})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError(f"{path}: mesh has no triangles")
    if not np.isfinite(mesh.vertices).all():
        raise ValueError(f"{path}: mesh has non-finite vertices")
    return mesh


class Scene:
    """Finds, for a shape, its ground truth and scan, and maps everything into the unit-sphere frame."""

    def __init__(self, cfg: RenderConfig):
        for name in ("pred_frame", "scan_frame"):
            if getattr(cfg, name) not in ("auto", "normalized", "source"):
                raise ValueError(f"{name} must be auto, normalized or source, got {getattr(cfg, name)!r}")
        self.cfg = cfg
        self.source = None
        default = "normalized"
        if cfg.gt:
            gt_dir = Path(cfg.gt)
            if not gt_dir.is_dir():
                raise FileNotFoundError(f"{gt_dir}: ground-truth folder not found")
            fmt = detect_format(gt_dir) if cfg.gt_format == "auto" else cfg.gt_format
            self.source = GroundTruthSource(gt_dir, fmt)
            default = "normalized" if fmt == "data" else "source"
        self.pred_frame = default if cfg.pred_frame == "auto" else cfg.pred_frame
        self.scan_frame = default if cfg.scan_frame == "auto" else cfg.scan_frame
        self._gt: dict[str, GroundTruth] = {}

    def ground_truth(self, stem: str) -> GroundTruth | None:
        if self.source is None:
            return None
        shape_id = self.source.match(stem)
        if shape_id is None:
            return None
        if shape_id not in self._gt:
            self._gt = {shape_id: self.source.load(shape_id, normals=False)}
        return self._gt[shape_id]

    def to_unit(self, points: np.ndarray, have: str, gt: GroundTruth | None) -> np.ndarray:
        """``points: (N, 3)`` from frame ``have`` to the shape's unit sphere (as they are without ground truth)."""
        return np.asarray(points, dtype=np.float64) if gt is None else to_frame(points, have, "normalized", gt)


def shape_picture(
    scene: Scene, name: str, mesh_path: Path | None = None, scan_path: Path | None = None, recon_path: Path | None = None, view: ViewConfig | None = None,
    mesh_title: str | None = None,
) -> tuple[ShapePicture, list[str]]:
    """The picture of one shape and the notes on what it lacks (an unreadable scan, no ground truth).
    ``mesh_title`` names the mesh's panel (default: ``completion`` beside a scan, else ``mesh``)."""
    view = view or scene.cfg.view
    notes: list[str] = []
    gt = scene.ground_truth(name)
    if scene.source is not None and gt is None:
        notes.append(f"{name}: no ground truth in {scene.cfg.gt}")
    gt_points = None if gt is None else gt.norm.apply(gt.points)
    scan = None
    if scan_path is not None:
        try:
            scan = scene.to_unit(read_scan(scan_path).points, scene.scan_frame, gt)
        except ScanError as e:
            notes.append(str(e))
    panels: list[Panel] = []
    if scan is not None:
        panels.append(Panel(f"scan ({len(scan)} pts)", [Points(scan, SCAN_COLOR)]))
    first: np.ndarray | None = None
    for title, path in ((mesh_title or ("completion" if scan is not None else "mesh"), mesh_path), ("reconstruction", recon_path)):
        if path is None:
            continue
        try:
            mesh = load_mesh(path)
        except ValueError as e:
            notes.append(str(e))
            panels.append(Panel(f"{title}: none", []))
            continue
        vertices = scene.to_unit(mesh.vertices, scene.pred_frame, gt)
        first = vertices if first is None else first
        drawn = Mesh(vertices, np.asarray(mesh.faces), distance_to=gt_points, max_distance=view.max_distance)
        panels.append(Panel(title, [drawn] + ([Points(scan, SCAN_COLOR, radius=0.8)] if scan is not None and path == mesh_path else [])))
    if gt_points is not None:
        if scan is not None:
            seen = observed_mask(gt_points, scan, OBSERVED_RADIUS)
            items = [Points(gt_points[~seen], GT_COLOR, radius=1.2), Points(gt_points[seen], SCAN_COLOR, radius=1.2)]
        else:
            items = [Points(gt_points, GT_COLOR, radius=1.2)]
        panels.append(Panel("ground truth", items))
    reference = gt_points if gt_points is not None else (first if first is not None else scan)
    framing = Framing.of(reference) if reference is not None else Framing(np.zeros(3), 1.0)
    coloured = gt_points is not None and any(isinstance(i, Mesh) for p in panels for i in p.items)
    return ShapePicture(name, panels, framing, view.max_distance if coloured else None), notes


def render_inputs(cfg: RenderConfig) -> dict:
    """Render every shape under ``cfg.input`` (or the slices of ``cfg.run``'s codes); returns the
    report written to ``OUTPUT/render.json``."""
    if cfg.run and not cfg.input and cfg.output:
        return render_slices(cfg)
    if not cfg.input or not cfg.output:
        raise ValueError("render needs input=MESH_SCAN_OR_FOLDER output=DIR (or run=RUN_DIR output=DIR for SDF slices)")
    if cfg.view.views < 1 or cfg.view.size < 16:
        raise ValueError(f"render needs views >= 1 and size >= 16, got views={cfg.view.views} size={cfg.view.size}")
    src = Path(cfg.input)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such mesh, scan or folder")
    scene = Scene(cfg)
    jobs = find_shapes(src, Path(cfg.scans) if cfg.scans else None, Path(cfg.reconstructed) if cfg.reconstructed else None)
    if not jobs:
        raise FileNotFoundError(f"{src}: no meshes ({', '.join(MESH_SUFFIXES)}) or scans ({', '.join(SCAN_SUFFIXES)})")
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"config": json.loads(json.dumps(asdict(cfg))), "frame": "unit sphere of each shape (DeepSDF's normalisation)", "shapes": {}}
    on_sheet = {jobs[i * len(jobs) // k][0] for i in range(k)} if (k := min(max(cfg.sheet_shapes, 0), len(jobs))) and cfg.sheet else set()
    sheet: list[np.ndarray] = []
    title = "reconstruction" if src.is_dir() and (src / "reconstruction.json").is_file() else None
    for name, mesh, scan, recon in tqdm(jobs, desc="render", unit="shape", disable=not cfg.progress):
        try:
            picture, notes = shape_picture(scene, name, mesh, scan, recon, mesh_title=title)
            image = picture.image(cfg.view)
            if name in on_sheet:
                sheet.append(image)
            path = write_png(out / f"{name}.png", image)
            report["shapes"][name] = {"status": "ok", "png": path.name, **({"notes": notes} if notes else {})}
        except Exception as e:  # one shape's failure is reported; the others are still drawn
            report["shapes"][name] = {"status": "failed", "reason": f"{type(e).__name__}: {e}"}
            tqdm.write(f"render: {name}: {e}")
    if sheet:
        width = max(im.shape[1] for im in sheet)
        padded = [np.pad(im, ((0, 6), (0, width - im.shape[1]), (0, 0)), constant_values=255) for im in sheet]
        report["sheet"] = str(write_png(Path(cfg.sheet), np.concatenate(padded, axis=0)))
    write_json(out / "render.json", report)
    return report


def render_slices(cfg: RenderConfig) -> dict:
    """``OUTPUT/<id>_slices.png`` for each of ``cfg.ids`` of the run (``mean``: the zero code)."""
    from sdf_autodec.shapes.slices import ground_truth_samples, model_slices
    from sdf_autodec.shapes.train import load_trained

    model = load_trained(cfg.run, "cpu")
    samples_of = ground_truth_samples(cfg.data) if cfg.data else (lambda name: None)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"config": json.loads(json.dumps(asdict(cfg))), "frame": "the model's normalised frame", "shapes": {}}
    for name in cfg.ids:
        try:
            samples = samples_of(name)
            path = write_png(out / f"{name}_slices.png", model_slices(model, name, samples))
            report["shapes"][name] = {"status": "ok", "png": path.name, "ground_truth": samples is not None}
        except Exception as e:
            report["shapes"][name] = {"status": "failed", "reason": f"{type(e).__name__}: {e}"}
    write_json(out / "render.json", report)
    return report


def find_shapes(src: Path, scans: Path | None = None, reconstructed: Path | None = None) -> list[tuple[str, Path | None, Path | None, Path | None]]:
    """``(name, mesh, scan, reconstruction)`` per shape under ``src`` (see the module docstring)."""
    if src.is_file():
        if src.suffix.lower() in MESH_SUFFIXES:
            return [(src.stem, src, None, None)]
        return [(src.stem, None, src, None)]
    ref_dir = src / REFERENCES
    meshes = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in MESH_SUFFIXES and ref_dir not in p.parents)
    scan_files = find_scan_files(scans) if scans is not None else _completed_scans(src)
    recon = {p.stem: p for p in reconstructed.glob("*.ply")} if reconstructed is not None and reconstructed.is_dir() else {}
    if meshes:
        return [(p.stem, p, scan_files.get(p.stem), recon.get(_shape_id(p.stem, recon))) for p in meshes]
    return [(p.stem, None, p, None) for p in sorted(q for q in src.rglob("*") if q.is_file() and q.suffix in SCAN_SUFFIXES)]


def _shape_id(stem: str, known: dict) -> str | None:
    if stem in known:
        return stem
    prefixes = [k for k in known if stem.startswith(k + "_")]
    return max(prefixes, key=len) if prefixes else None


def _completed_scans(folder: Path) -> dict[str, Path]:
    """The scans ``complete`` recorded in ``folder/completion.json`` (none when it has no such report)."""
    report = folder / "completion.json"
    if not report.is_file():
        return {}
    try:
        scans = json.loads(report.read_text()).get("scans", {})
    except ValueError:
        return {}
    return {name: Path(e["scan"]) for name, e in scans.items() if isinstance(e, dict) and e.get("scan") and Path(e["scan"]).is_file()}


def write_png(path: Path, image: np.ndarray) -> Path:
    """``image: (H, W, 3)`` uint8 → ``path`` (written under a temporary name, then renamed)."""
    data = png_bytes(image)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return path


def mesh_sheet(paths: list[Path], out: Path, size: int = 80, columns: int = 14, azimuth: float = 30.0, elevation: float = 20.0) -> Path:
    """A contact sheet of the meshes at ``paths`` as they lie (y up), each centred on its bounding box
    and seen from ``azimuth``/``elevation`` (``Camera.orbit``: azimuth 0 looks along -z, 90 along -x),
    ``columns`` tiles of ``size`` pixels a row → ``out`` (PNG). For checking poses by eye."""
    tiles = []
    for path in paths:
        mesh = load_mesh(path)
        vertices = mesh.vertices - (mesh.bounds[0] + mesh.bounds[1]) / 2
        tiles.append(render([Mesh(vertices, mesh.faces)], Camera.orbit(Framing.of(vertices), azimuth, elevation), size))
    if not tiles:
        raise ValueError(f"mesh_sheet: no meshes to draw into {out}")
    blank = np.full((size, size, 3), 255, np.uint8)
    rows = [np.concatenate(tiles[i : i + columns] + [blank] * (columns - len(tiles[i : i + columns])), axis=1) for i in range(0, len(tiles), columns)]
    return write_png(out, np.concatenate(rows, axis=0))


def png_bytes(image: np.ndarray, size: int | None = None) -> bytes:
    """``image: (H, W, 3)`` uint8 as PNG bytes, shrunk to ``size`` pixels on its longer side if given."""
    import io

    from PIL import Image

    img = Image.fromarray(image)
    if size is not None and max(img.size) > size:
        img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _colour_bar(canvas, origin: tuple[int, int], width: int, height: int, top: float, font) -> None:
    """A vertical ``DISTANCE_CMAP`` bar from 0 (bottom) to ``top``, labelled in the unit-sphere frame."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    x0, y0 = origin
    strip = max(8, width // 4)
    ramp = colormaps[DISTANCE_CMAP](np.linspace(1, 0, height))[:, :3]
    bar = (np.repeat(ramp[:, None], strip, axis=1) * 255).astype(np.uint8)
    canvas.paste(Image.fromarray(bar), (x0, y0))
    draw = ImageDraw.Draw(canvas)
    for frac in (0.0, 0.5, 1.0):
        y = y0 + int((1 - frac) * (height - 1))
        draw.line([(x0 + strip, y), (x0 + strip + 3, y)], fill=(0, 0, 0))
        draw.text((x0 + strip + 5, max(0, y - 6)), f"{top * frac:.3g}", fill=(0, 0, 0), font=font)
    draw.text((x0 - 2, 1), "distance", fill=(30, 30, 30), font=font)
    draw.text((x0 - 2, y0 + height + 1), "unit sphere", fill=(90, 90, 90), font=_font(9))
