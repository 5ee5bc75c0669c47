"""``sdf-autodec <command> [key=value ...]``: dispatch to the subcommand's Hydra app."""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "prep": ("sdf_autodec.cli.commands", "prep_main", "meshes → SDF samples, surface samples, partial scans (DeepSDF layout)"),
    "dvr": ("sdf_autodec.cli.commands", "dvr_main", "DVR/ONet depth renderings (EXR + cameras) → partial-scan npz files"),
    "train": ("sdf_autodec.cli.commands", "train_main", "train the autodecoder: decoder + one latent per shape"),
    "complete": ("sdf_autodec.cli.commands", "complete_main", "partial scans → fitted latents → completed meshes"),
    "reconstruct": ("sdf_autodec.cli.commands", "reconstruct_main", "unknown shapes' SDF samples → fitted latents → meshes → metrics (DeepSDF's protocol)"),
    "mesh": ("sdf_autodec.cli.commands", "mesh_main", "training latents → meshes (marching cubes)"),
    "eval": ("sdf_autodec.cli.commands", "eval_main", "meshes vs ground truth → metrics JSON (Chamfer, F-score, NC)"),
    "render": ("sdf_autodec.cli.commands", "render_main", "meshes, scans (and their ground truth) → PNG pictures, headless"),
    "report": ("sdf_autodec.cli.commands", "report_main", "a run and its outputs → one self-contained HTML page (metrics, pictures, QA, codes, slices)"),
    "demo": ("sdf_autodec.cli.demo", "demo_main", "all of it on the bundled procedural shapes"),
    "mnist": ("sdf_autodec.cli.mnist", "mnist_main", "images: autoencoder vs autodecoder on MNIST, masked completion, latent spaces"),
}

USAGE = """usage: sdf-autodec <command> [key=value ...] [--help]

commands:
{commands}

`sdf-autodec <command> --help` shows the command's configuration and presets.
examples:
  sdf-autodec prep input=meshes/ output=data/
  sdf-autodec train data=data/ run=runs/a recipe=small epochs=300
  sdf-autodec complete run=runs/a input=data/PartialScans output=completed/
  sdf-autodec reconstruct run=runs/a data=data/ split=test output=recon/ [fit=fast]
  sdf-autodec mesh run=runs/a output=meshes/ mesh.resolution=256
  sdf-autodec eval pred=completed/ gt=data/ output=metrics.json
  sdf-autodec render input=completed/ gt=data/ output=pictures/ [view.views=3]
  sdf-autodec report run=runs/a data=data/ eval=metrics.json completed=completed/ output=report.html
  sdf-autodec demo output=demo_out
"""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE.format(commands="\n".join(f"  {n:<12} {h}" for n, (_, _, h) in COMMANDS.items())))
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"sdf-autodec: error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    module, attr, _ = COMMANDS[command]
    from sdf_autodec.optional import tune_glibc_malloc

    tune_glibc_malloc()
    sys.argv = [f"sdf-autodec {command}", *rest]
    getattr(importlib.import_module(module), attr)()


if __name__ == "__main__":
    main()
