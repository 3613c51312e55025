"""The search: setup, the Tuner and its callbacks, the output dir, the cluster, the final test evaluation."""

from hgen_ray.search.output_dir import TUNE_DIR, create_output_dir, prepare_output_dir
from hgen_ray.search.run import SearchRun, run_search
from hgen_ray.search.setup import Prepared, prepare, search_space

__all__ = ["TUNE_DIR", "Prepared", "SearchRun", "create_output_dir", "prepare", "prepare_output_dir", "run_search",
           "search_space"]
