"""Speed and memory of the core evaluation, on this machine.

    .venv/bin/python benchmarks/evaluate.py [--config configs/quickstart.yaml] [--repeats 3]

Prints:
- base H-CNN training time from scratch and its clean test accuracy
  (target: >= 90% in <= 90 s on 2 CPU cores);
- wall time of evaluating the config's candidate with the base model cached:
  compress, fine-tune on the subset, evaluate 13 x test_per_category samples,
  human pool and profiling (target: <= 60 s), median of --repeats;
- peak RSS of the driver process (target: <= 3 GB). The simulated people run
  in Ray worker processes and are not counted; each is a small idle actor.
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
from hgen_ray.config import load_config
from hgen_ray.data.splits import load_splits
from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.training import predict_logits
from hgen_ray.trial import evaluate_candidate

TRAIN_TARGET_S = 90.0
TRAIN_TARGET_ACCURACY = 0.90
EVALUATE_TARGET_S = 60.0
RSS_TARGET_GB = 3.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    config = load_config(args.config)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")

    with tempfile.TemporaryDirectory() as fresh_cache:
        fresh = dataclasses.replace(config, cache_dir=fresh_cache)
        splits = load_splits(fresh.data, fresh.seed)
        started = time.perf_counter()
        base = get_architecture("h_cnn").trained_base(fresh, splits)
        train_s = time.perf_counter() - started
    full_test = dataclasses.replace(fresh.data, test_per_category=10000)
    test = load_splits(full_test, fresh.seed, with_test=True)
    accuracy = float((predict_logits(base.model, test.test_images).argmax(1) == test.test_labels).float().mean())
    print(f"base training: {train_s:.1f} s ({verdict(train_s <= TRAIN_TARGET_S)} <= {TRAIN_TARGET_S:.0f} s), "
          f"clean test accuracy {accuracy:.4f} on 10,000 images "
          f"({verdict(accuracy >= TRAIN_TARGET_ACCURACY)} >= {TRAIN_TARGET_ACCURACY:.2f})")

    ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    get_architecture("h_cnn").trained_base(config, splits)  # make sure the cached model exists before timing
    timings = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        metrics = evaluate_candidate(config, config.candidate, data=splits).metrics
        timings.append(time.perf_counter() - started)
    ray.shutdown()
    samples = 13 * config.data.validation_per_category  # evaluate_candidate scores on validation
    print(timing_summary(f"evaluate one candidate ({samples} samples)", timings, EVALUATE_TARGET_S))
    print(f"  accuracy {metrics['accuracy']:.4f}, storage {metrics['storage_mb']:.3f} MB, "
          f"deferral {metrics['deferral_rate']:.3f}")
    rss = peak_rss_gb()
    print(f"peak driver RSS: {rss:.2f} GB ({verdict(rss <= RSS_TARGET_GB)} <= {RSS_TARGET_GB:.0f} GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
