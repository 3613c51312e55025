"""The bench: every strategy with the same budget on each architecture, over seeds, plus system figures."""

from hgen_ray.bench.run import load_bench, run_bench, seeds_of, trial_budget

__all__ = ["load_bench", "run_bench", "seeds_of", "trial_budget"]
