"""``hgen-ray serve DIR``: check the H-DNN and the port, make the serve folder and its tokens, start the app.

The serve folder (default ``DIR/../serve``, so ``runs/q1/serve`` for ``runs/q1/best``) holds ``tokens/``,
``queue.sqlite``, ``answers.csv`` and ``served.json`` (what is served, and the classes, for
``calibrate-people``). The app lives as long as this command: Ctrl-C or SIGTERM takes it down, on a
cluster too, where only this app is deleted (Serve itself stops only when no other app is left). Everything
the input could get wrong is checked before Ray starts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import socket
import time
from pathlib import Path
from types import FrameType

import numpy as np
import torch

from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.classifier import ImageClassifier
from hgen_ray.atomic_write import write_text_atomic
from hgen_ray.config import CHALLENGE_CATEGORIES, ConfigError, ExperimentConfig, ServeConfig, as_dict, build_dataclass
from hgen_ray.data.challenges import apply_challenge
from hgen_ray.data.splits import load_splits
from hgen_ray.hdnn import HDNN, load_hdnn, saved_config
from hgen_ray.human.calibration import resolve_calibration
from hgen_ray.output_lock import holding
from hgen_ray.serve.app import CalibrationImages, HDNNService, ServeSettings
from hgen_ray.serve.chain import ChainRule
from hgen_ray.serve.tokens import Tokens, ensure_tokens, tokens_dir

__all__ = ["APP_NAME", "check_not_served", "serve_hdnn", "stop_own_app"]

log = logging.getLogger("hgen_ray")
APP_NAME = "hgen-ray"
CALIBRATION_IMAGES = 1000  # held-out test images drawn once, each shown under one category and severity
SEVERITIES = (1, 2, 3, 4, 5)


def check_port_free(host: str, port: int) -> None:
    """Refuse, before anything starts, a port another program holds."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as the server binds: a port whose old connections linger in TIME_WAIT is free, one listened on is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ConfigError(f"--port {port}: {host}:{port} is not free ({error.strerror}); allowed: a free port, "
                              "e.g. --port 8001") from None


def _served(folder: Path) -> tuple[HDNN, ExperimentConfig]:
    hdnn = load_hdnn(folder)  # HDNNError (exit 2) when it is not one
    config = saved_config(folder)
    if not isinstance(get_architecture(hdnn.architecture), ImageClassifier):
        raise ConfigError(f"{folder}: a {hdnn.architecture} H-DNN; allowed: a classifier H-DNN (h_cnn, torchvision, "
                          "custom); detectors are not served yet")
    return hdnn, config


@dataclasses.dataclass(frozen=True)
class ServedData:
    class_names: tuple[str, ...]
    dataset: str  # the loader's name, which decides the people's calibration
    calibration_images: CalibrationImages | None  # None when no calibration image is shown


def _served_data(config: ExperimentConfig, rate: float) -> ServedData:
    """The data's classes, and held-out test images under random challenges when people are calibrated.

    The test images are read here only to measure people, never to choose or score an H-DNN.
    """
    splits = load_splits(config.data, config.seed, with_test=rate > 0)
    if rate == 0 or splits.test_images is None or splits.test_labels is None:
        return ServedData(splits.class_names, splits.dataset, None)
    rng = np.random.default_rng(config.seed)
    chosen = rng.choice(len(splits.test_labels), size=min(CALIBRATION_IMAGES, len(splits.test_labels)),
                        replace=False)
    categories = ("clean", *CHALLENGE_CATEGORIES)
    picked = [categories[i] for i in rng.integers(len(categories), size=len(chosen))]
    severities = np.where(np.array(picked) == "clean", 0, rng.choice(SEVERITIES, size=len(chosen)))
    images = torch.stack([apply_challenge(splits.test_images[i:i + 1], c, max(int(s), 1), config.seed + n)[0]
                          for n, (i, c, s) in enumerate(zip(chosen, picked, severities))])
    return ServedData(splits.class_names, splits.dataset,
                      CalibrationImages(images.numpy().astype(np.float32), splits.test_labels[chosen].numpy(),
                                        tuple(picked), severities))


def _settings(folder: Path, serve_dir: Path, hdnn: HDNN, config: ExperimentConfig, options: ServeConfig,
              data: ServedData) -> ServeSettings:
    calibration = resolve_calibration(config.human_pool.calibration, data.dataset, data.class_names)
    rule = ChainRule.of(hdnn.candidate.human, config.data.severity, calibration)
    return ServeSettings(str(folder.resolve()), str(serve_dir.resolve()), data.class_names, rule, options,
                         config.seed)


def _stop_on_sigterm() -> None:
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt("stopped; the queue and every answer are kept in the serve folder")

    signal.signal(signal.SIGTERM, interrupt)


def serve_hdnn(folder: Path, serve_dir: Path | None, overrides: dict[str, object], address: str | None) -> int:
    """Serve the H-DNN in ``folder`` until interrupted.

    Args:
        folder: A saved H-DNN (``DIR/best``).
        serve_dir: Where tokens, the queue and answers live; default ``folder/../serve``.
        overrides: ``serve`` keys given as flags, over the H-DNN's own ``serve`` block.
        address: A Ray cluster, else ``RAY_ADDRESS``, else a local node.
    """
    hdnn, config = _served(folder)
    given = {key: value for key, value in overrides.items() if value is not None}
    options = build_dataclass(ServeConfig, {**as_dict(config.serve), **given}, "serve")  # flags meet the same limits
    check_port_free(options.host, options.port)
    data = _served_data(config, options.calibration_rate)  # a missing dataset is refused before...
    serve_dir = serve_dir or folder.resolve().parent / "serve"
    serve_dir.mkdir(parents=True, exist_ok=True)  # ...anything is written
    with holding(serve_dir, "serve"):
        settings = _settings(folder, serve_dir, hdnn, config, options, data)
        tokens = ensure_tokens(serve_dir, options.people)
        write_text_atomic(serve_dir / "served.json", json.dumps(
            {"hdnn": settings.hdnn_dir, "dataset": data.dataset, "classes": list(data.class_names),
             "mechanism": settings.rule.mechanism, "k": settings.rule.k, "combine": settings.rule.combine}, indent=2))
        _run_app(settings, tokens, data.calibration_images, options, address)
    return 0


def _run_app(settings: ServeSettings, tokens: Tokens, calibration_images: CalibrationImages | None,
             options: ServeConfig, address: str | None) -> None:
    from ray import serve

    from hgen_ray.search.cluster import init_ray

    _stop_on_sigterm()
    init_ray(address)
    serve.start(http_options={"host": options.host, "port": options.port})
    check_not_served()  # before the try: stopping would delete the other command's app
    try:
        serve.run(HDNNService.bind(settings, tokens, calibration_images), name=APP_NAME, route_prefix="/")
        base = f"http://{options.host}:{options.port}"
        print(f"serving {settings.hdnn_dir}\n  app: {base}/v1/predict  (stats: {base}/v1/stats)\n"
              f"  people page: {base}/people\n  tokens: {tokens_dir(Path(settings.serve_dir))} "
              f"(client, people/person-1..{options.people}; mode 0600, never printed)\n"
              f"  answers: {Path(settings.serve_dir) / 'answers.csv'}\nready; Ctrl-C stops it", flush=True)
        while True:
            time.sleep(3600)
    finally:
        stop_own_app()


def check_not_served() -> None:
    """Refuse a cluster where another ``hgen-ray serve`` runs: the app's name and its route ``/`` are taken.

    Raises:
        ConfigError: An app named ``hgen-ray`` is already deployed.
    """
    from ray import serve

    if APP_NAME in serve.status().applications:
        raise ConfigError(f"--address: this Ray cluster already serves an app named {APP_NAME!r} (another "
                          "hgen-ray serve); stop it first, or serve on another cluster")


def stop_own_app() -> None:
    """Delete this command's app; stop Serve only if no other app is left on the cluster.

    On a shared cluster Serve may run other people's applications, which ``serve.shutdown()`` would take down too.
    """
    from ray import serve

    serve.delete(APP_NAME)
    if not serve.status().applications:
        serve.shutdown()
