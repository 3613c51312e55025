"""Speed, accuracy and memory of the two detectors, on this machine.

    .venv/bin/python benchmarks/detection.py [--models h_yolo h_faster_rcnn] [--repeats 2]

For each detector, with its config (configs/<model>.yaml), prints:
- base training time from scratch and its clean test mAP@0.5 on the clean test
  canvases (target: >= 0.5 in <= 10 minutes on 2 CPU cores);
- wall time of evaluating the config's candidate with the base cached:
  compress, fine-tune, 13 x test_canvases canvases with people, profiling
  (target: <= 3 minutes), median of --repeats, with the candidate's measures;
- peak RSS of the driver process (target: <= 4 GB); the simulated people are
  separate, idle Ray actors and are not counted.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
import time
import warnings

import ray
import torch

from figures import peak_rss_gb, timing_summary, verdict  # benchmarks/figures.py, next to this script
from hgen_ray.config import ExperimentConfig, load_config
from hgen_ray.architectures import get_architecture
from hgen_ray.data.detection_splits import load_detection_data
from hgen_ray.trial import evaluate_candidate

TRAIN_TARGET_S = 600.0
TRAIN_TARGET_MAP50 = 0.5
EVALUATE_TARGET_S = 180.0
RSS_TARGET_GB = 4.0


def _train_from_scratch(config: ExperimentConfig) -> None:
    with tempfile.TemporaryDirectory() as fresh_cache:
        fresh = dataclasses.replace(config, cache_dir=fresh_cache)
        data = load_detection_data(fresh, "test")  # the clean test canvases, for the base detector's figure
        started = time.perf_counter()
        base = get_architecture(fresh.model.name).load_base(fresh, data)
        train_s = time.perf_counter() - started
    clean = get_architecture(fresh.model.name).map50(base, data.splits.test)
    print(f"  base training: {train_s:.1f} s ({verdict(train_s <= TRAIN_TARGET_S)} <= {TRAIN_TARGET_S:.0f} s), "
          f"clean test mAP@0.5 {clean:.3f} on {len(data.splits.test)} canvases "
          f"({verdict(clean >= TRAIN_TARGET_MAP50)} >= {TRAIN_TARGET_MAP50})", flush=True)


def _time_evaluations(config: ExperimentConfig, repeats: int) -> None:
    data = load_detection_data(config)
    get_architecture(config.model.name).load_base(config, data)  # cached before timing
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        metrics = evaluate_candidate(config, config.candidate, data=data).metrics
        timings.append(time.perf_counter() - started)
    canvases = 13 * config.detection.test_canvases
    print("  " + timing_summary(f"evaluate one candidate ({canvases} canvases)", timings, EVALUATE_TARGET_S))
    print(f"    mAP@0.5 {metrics['accuracy']:.3f} with people, {metrics['dnn_accuracy']:.3f} network alone "
          f"(clean {metrics['accuracy_clean']:.3f}); storage {metrics['storage_mb']:.3f} MB; "
          f"deferral {metrics['deferral_rate']:.3f}; labour {metrics['labor_s_per_1k']:.0f} s per 1k images; "
          f"latency {metrics['latency_ms']:.0f} ms (network {metrics['dnn_latency_ms']:.2f} ms)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["h_yolo", "h_faster_rcnn"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    for name in args.models:
        config = load_config(f"configs/{name}.yaml")
        print(f"{name} (configs/{name}.yaml)", flush=True)
        _train_from_scratch(config)
        _time_evaluations(config, args.repeats)
    ray.shutdown()
    rss = peak_rss_gb()
    print(f"peak driver RSS: {rss:.2f} GB ({verdict(rss <= RSS_TARGET_GB)} <= {RSS_TARGET_GB:.0f} GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
