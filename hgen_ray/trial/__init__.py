"""One candidate's trial: compress, run with people, measure, score; and the Tune trainable around it."""

from hgen_ray.trial.evaluation import Evaluation, evaluate_candidate, load_split_data, measure_network
from hgen_ray.trial.run import ContextHandle, TrialContext, run_trial

__all__ = ["ContextHandle", "Evaluation", "TrialContext", "evaluate_candidate", "load_split_data", "measure_network",
           "run_trial"]
