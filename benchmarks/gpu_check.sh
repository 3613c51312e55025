#!/usr/bin/env bash
# GPU check: a tiny search with fractional GPUs (gpus_per_trial 0.25, 4 at once) and
# with whole GPUs (gpus_per_trial 1), printing energy_mj, energy_source and trial
# throughput for each. Under 5 minutes on one GPU machine once installed.
#   bash benchmarks/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}"
make --quiet install data
.venv/bin/python - "$out" <<'PY'
import csv, statistics, subprocess, sys, time
from pathlib import Path

import torch
import yaml

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch; this check needs a GPU")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
base = {
    "seed": 0,
    "cache_dir": str(out / "cache"),
    "data": {"test_per_category": 300},
    "model": {"epochs": 2},
    "finetune": {"subset": 5000},
    "search": {"trials": 8, "warmup_trials": 4, "references": False, "cpus_per_trial": 2},
}
warm = out / "warm-cache.yaml"
warm.write_text(yaml.safe_dump(base))
subprocess.run([".venv/bin/hgen-ray", "evaluate", "--config", str(warm), "--out", str(out / "warm")],
               check=True, stdout=subprocess.DEVNULL)  # trains the base model once, outside both clocks
for gpus, concurrent in ((0.25, 4), (1.0, 1)):
    config = {**base, "search": {**base["search"], "gpus_per_trial": gpus, "max_concurrent_trials": concurrent}}
    path = out / f"gpu-{gpus}.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    subprocess.run([".venv/bin/hgen-ray", "search", "--config", str(path), "--out", str(out / f"search-gpu-{gpus}")],
                   check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    with open(out / f"search-gpu-{gpus}" / "trials.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] == "TERMINATED"]
    energies = [float(r["energy_mj"]) for r in rows]
    print(f"gpus_per_trial={gpus} ({concurrent} at once): {len(rows)} trials in {wall:.0f} s "
          f"({60 * len(rows) / wall:.1f} trials/min); "
          f"energy_mj median {statistics.median(energies):.4f} "
          f"[{min(energies):.4f}..{max(energies):.4f}], energy_source {sorted({r['energy_source'] for r in rows})}, "
          f"energy_shared_gpu {sorted({r['energy_shared_gpu'] for r in rows})}")
PY
