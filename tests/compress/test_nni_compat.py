"""The compat module is what makes NNI 3.0's speedup run on torch 2.14."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SPEEDUP = textwrap.dedent(
    """
    import warnings; warnings.filterwarnings("ignore")
    import torch
    {apply}
    from nni.compression.pruning import L1NormPruner
    from nni.compression.speedup import ModelSpeedup
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3))
    pruner = L1NormPruner(model, [{{"op_names": ["0"], "sparse_ratio": 0.5}}])
    _, masks = pruner.compress()
    pruner.unwrap_model()
    ModelSpeedup(model, torch.rand(2, 1, 8, 8), masks).speedup_model()
    print("channels", model[0].out_channels)
    """
)


# Load the compat module by path: importing the package would run its __init__,
# which applies every patch and would hide a missing one.
LOAD_COMPAT = (
    "import importlib.util as u; spec = u.spec_from_file_location('compat', {path!r}); "
    "compat = u.module_from_spec(spec); spec.loader.exec_module(compat); "
).format(path=str(Path(__file__).resolve().parents[2] / "hgen_ray" / "compress" / "nni_compat.py"))


def _run(apply: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SPEEDUP.format(apply=apply)], capture_output=True, text=True,
                          timeout=300)


def test_speedup_fails_on_this_torch_without_the_compat_module() -> None:
    result = _run("")
    assert result.returncode != 0
    assert "'NoneType' object has no attribute 'startswith'" in result.stderr


def test_speedup_shrinks_the_conv_with_the_compat_module() -> None:
    result = _run(LOAD_COMPAT + "compat.apply_nni_compat()")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "channels 4" in result.stdout


def test_compat_without_the_second_patch_hits_the_is_impure_error() -> None:
    result = _run(LOAD_COMPAT + "compat._drop_moduleless_builtins()")
    assert result.returncode != 0
    assert "is_impure() takes 1 positional argument but 2 were given" in result.stderr
