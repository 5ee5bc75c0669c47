# The sweep of results/dvr_tables_adapt/sweep_first4.jsonl (issue 13, session 5), as run: python sweep_first4.py {1view|3view} STEPS LR ANCHOR 160 4
# with env FS (free space per point) and BG (background per point); WORK is a placeholder for the scratch folder used.
import sys, json, time
sys.path.insert(0, "/work/main")
from sdf_autodec.optional import tune_glibc_malloc
tune_glibc_malloc()
from sdf_autodec.core.adaptation import AdaptConfig
from sdf_autodec.core.fitting import FitConfig
from sdf_autodec.shapes.complete import CompleteConfig, complete
from sdf_autodec.shapes.mesh import MeshConfig
from sdf_autodec.shapes.evaluate import EvalConfig, evaluate
from sdf_autodec.shapes.observations import ObservationConfig
W = "WORK"  # the folder of results/dvr_tables (its run/ and scans/); this session: /work/scratch/dvr_full
tag, iters, lr, aw = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
res = int(sys.argv[5]) if len(sys.argv) > 5 else 160
limit = int(sys.argv[6]) if len(sys.argv) > 6 else 0
import os
scans = f"WORK/adapt/bgscans/{tag}" if os.environ.get("BG") else f"{W}/scans/{tag}"
if limit:
    import shutil, pathlib
    sub = pathlib.Path(f"WORK/adapt/scans_{tag}_{limit}" + ("_bg" if os.environ.get("BG") else "")); sub.mkdir(exist_ok=True)
    for p in sorted(pathlib.Path(scans).glob("*.npz"))[:limit]:
        shutil.copy(p, sub / p.name)
    scans = str(sub)
out = f"WORK/adapt/out_{tag}_{iters}_{lr}_{aw}_{res}_{limit}_fs" + os.environ.get("FS", "1") + "_bg" + os.environ.get("BG", "0")
t0 = time.time()
complete(CompleteConfig(run=f"{W}/run", input=scans, output=out, batch_size=20,
    fit=FitConfig(iterations=400, restarts=1), adapt=AdaptConfig(iterations=iters, lr=lr, anchor_weight=aw),
    observe=ObservationConfig(num_surface=2000, orient_normals="gravity", free_space_per_point=float(os.environ.get("FS", "1")), background_per_point=float(os.environ.get("BG", "0"))),
    mesh=MeshConfig(resolution=res, half_size=0.55), references=False, progress=False))
t1 = time.time()
m = evaluate(EvalConfig(pred=out, gt="/work/main/../shared/data/scans/dvr_tables", output=out + "/metrics.json", scans=scans, progress=False))
md, mn = m["median"], m["mean"]
print(json.dumps({"tag": tag, "iters": iters, "lr": lr, "aw": aw, "res": res, "complete_s": round(t1 - t0), "median_chamfer": md["chamfer"] * 1e3, "mean_chamfer": mn["chamfer"] * 1e3,
  "f1": md["fscore@1%"], "obs_recall": md.get("observed.recall@1%", md.get("observed.completion")), "acc": md.get("mesh_accuracy"), "cmpl": md.get("mesh_completion")}))
