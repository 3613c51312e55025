"""``hgen-ray serve`` on a shared cluster: a second one is refused, and stopping takes down its own app only, and
Serve when nothing else is left."""

from __future__ import annotations

import socket
import sys
import time
from urllib.request import urlopen

import pytest
from ray import cloudpickle, serve

from hgen_ray.config import ConfigError
from hgen_ray.serve.launch import APP_NAME, check_not_served, stop_own_app

OTHER_APP = "someone-else"


@serve.deployment(ray_actor_options={"num_cpus": 0})
class Hello:
    async def __call__(self, request: object) -> str:
        return "hello"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.usefixtures("ray_session")
def test_a_second_serve_is_refused_another_app_keeps_running_and_serve_stops_with_the_last_app() -> None:
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(Hello.bind(), name=OTHER_APP, route_prefix="/else")
        check_not_served()  # someone else's app is no reason to refuse
        serve.run(Hello.bind(), name=APP_NAME, route_prefix="/")
        with pytest.raises(ConfigError, match="already serves an app named 'hgen-ray'"):
            check_not_served()
        stop_own_app()
        applications = serve.status().applications
        assert APP_NAME not in applications and applications[OTHER_APP].status == "RUNNING"
        with urlopen(f"http://127.0.0.1:{port}/else", timeout=10) as response:
            assert response.read() == b"hello"

        serve.delete(OTHER_APP)
        serve.run(Hello.bind(), name=APP_NAME, route_prefix="/")
        stop_own_app()  # the last app: Serve and its HTTP proxy go too
        deadline = time.monotonic() + 30
        while _accepts(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _accepts(port)
    finally:
        serve.shutdown()
