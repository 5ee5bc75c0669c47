"""Fingerprints of the pipeline's behaviour, to prove that a refactoring changed nothing.

    .venv/bin/python scripts/fingerprint.py record OUT_DIR        # run the four checks, write OUT_DIR/fingerprint.json
    .venv/bin/python scripts/fingerprint.py compare A_DIR B_DIR   # identical? else where, and by how much

The four checks (issue 15, "same behaviour, proven"), each seeded:

1. ``prep`` of the demo's procedural set (8 shapes per family, the demo's sampling): the SHA-256 of
   every output file (SDF samples, normalisation, surface samples, scans, splits);
2. a short seeded ``train`` (the small recipe, 20 epochs) on that data: the weights and codes;
3. a seeded ``complete`` of the held-out shapes' first scans (30 steps): the fitted codes;
4. the MNIST quick study (``preset=quick``, where ../shared/data/mnist exists): ``results.json``
   without its wall-clock seconds.

Arrays are stored (``arrays.npz``) beside their hashes, so that ``compare`` can say how far apart two
runs are when the bytes differ (float order, 1e-6).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MNIST = Path(os.environ.get("SDF_AUTODEC_MNIST", REPO.parent / "shared" / "data" / "mnist"))  # override to fingerprint another checkout
IGNORED_PREP = ("manifest.json", "Packed")  # the manifest holds timings; the packed store is derived from the npz files


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "sdf_autodec.cli.main", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"fingerprint: {' '.join(args[:1])} failed:\n{proc.stderr[-3000:]}")


def canonical_mnist(results):
    """``results.json`` without what differs between two identical runs: wall-clock ``seconds`` (at any
    depth) and the paths the run was given."""
    if isinstance(results, dict):
        return {k: canonical_mnist(v) for k, v in results.items() if k != "seconds" and k not in ("output", "data_dir")}
    if isinstance(results, list):
        return [canonical_mnist(v) for v in results]
    return results


def mnist_hash(results) -> str:
    return hashlib.sha256(json.dumps(canonical_mnist(results), sort_keys=True).encode()).hexdigest()


def record(out: Path) -> None:
    import torch

    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    meshes, data, run = work / "meshes", work / "data", work / "run"
    code = (
        "from data_prep.procedural import ProceduralConfig, generate_dataset; from pathlib import Path; "
        f"generate_dataset(Path({str(meshes)!r}), ProceduralConfig(shapes_per_family=8, seed=0))"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    cli("prep", f"input={meshes}", f"output={data}", "dataset=procedural", "samples.num_samples=60000", "samples.surface_points=30000", "seed=0", "progress=false")
    prep = {str(p.relative_to(data)): sha(p) for p in sorted(data.rglob("*")) if p.is_file() and not any(part in IGNORED_PREP for part in p.relative_to(data).parts)}
    cli("train", f"data={data}", f"run={run}", "recipe=small", "epochs=20", "seed=0", "progress=false", "tensorboard=off")
    ckpt = torch.load(run / "checkpoints" / "latest.pt", weights_only=True, map_location="cpu")
    weights = {k: v.numpy() for k, v in ckpt["decoder"].items()}
    arrays = {f"weights/{k}": v for k, v in weights.items()}
    arrays["latents"] = ckpt["latents"].numpy()
    scans = work / "scans"
    scans.mkdir(exist_ok=True)
    test = json.loads((data / "splits" / "test.json").read_text())
    for cls, ids in test["procedural"].items():
        for i in ids:
            src = data / "PartialScans" / "procedural" / cls / f"{i}_v00.npz"
            (scans / src.name).write_bytes(src.read_bytes())
    cli("complete", f"run={run}", f"input={scans}", f"output={work / 'completed'}", "fit.iterations=30", "fit.seed=0", "references=false", "mesh.resolution=32", "progress=false")
    with np.load(work / "completed" / "latents.npz") as z:
        arrays["completed_codes"] = z["codes"]
    mnist = None
    if MNIST.is_dir():
        cli("mnist", f"output={work / 'mnist'}", f"data_dir={MNIST}", "preset=quick")
        mnist = canonical_mnist(json.loads((work / "mnist" / "results.json").read_text()))
    np.savez(out / "arrays.npz", **arrays)
    fp = {
        "prep": prep,
        "weights": hashlib.sha256(b"".join(np.ascontiguousarray(weights[k]).tobytes() for k in sorted(weights))).hexdigest(),
        "latents": hashlib.sha256(arrays["latents"].tobytes()).hexdigest(),
        "completed_codes": hashlib.sha256(arrays["completed_codes"].tobytes()).hexdigest(),
        "mnist_results": None if mnist is None else mnist_hash(mnist),
    }
    (out / "fingerprint.json").write_text(json.dumps(fp, indent=1))
    if mnist is not None:
        (out / "mnist_results.json").write_text(json.dumps(mnist, indent=1, sort_keys=True))
    print(f"fingerprint: {len(prep)} prep files, weights {fp['weights'][:12]}, codes {fp['completed_codes'][:12]}, mnist {str(fp['mnist_results'])[:12]} → {out}")


def compare(a: Path, b: Path) -> None:
    fa, fb = (json.loads((d / "fingerprint.json").read_text()) for d in (a, b))
    ok = True
    differing = sorted(k for k in set(fa["prep"]) | set(fb["prep"]) if fa["prep"].get(k) != fb["prep"].get(k))
    print(f"prep: {len(fa['prep'])} files, {len(differing)} differ" + (f" ({', '.join(differing[:5])}...)" if differing else ""))
    ok &= not differing
    with np.load(a / "arrays.npz") as za, np.load(b / "arrays.npz") as zb:
        for key in ("weights", "latents", "completed_codes"):
            same = fa[key] == fb[key]
            names = [k for k in za.files if k == key or k.startswith(key + "/")]
            gap = max(float(np.abs(za[k] - zb[k]).max()) if za[k].shape == zb[k].shape else float("inf") for k in names)
            print(f"{key}: {'identical' if same else f'differ, largest difference {gap:.3g}'}")
            ok &= same or gap <= 1e-6
    stored = [d / "mnist_results.json" for d in (a, b)]
    if all(f.is_file() for f in stored):  # recomputed, so that older records compare under today's canonical form
        ha, hb = (mnist_hash(json.loads(f.read_text())) for f in stored)
    else:
        ha, hb = fa["mnist_results"], fb["mnist_results"]
    same = ha == hb
    print(f"mnist results.json: {'identical' if same else 'differ'}")
    ok &= same
    print("SAME BEHAVIOUR" if ok else "BEHAVIOUR CHANGED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "record":
        record(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
