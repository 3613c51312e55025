"""Throughput and latency of ``hgen-ray serve``: the network alone, with and without batching, and the people path.

    .venv/bin/python benchmarks/serve.py [--config configs/quickstart.yaml] [--requests 400] [--out runs/bench-serve]

Serves the config's trained base network (uncompressed, msp gate) as two H-DNNs: one whose tau defers
nothing (the network alone) and one whose tau defers everything to a chain of one person. Each runs as a
real ``hgen-ray serve`` process on a local Ray node, loaded over HTTP from this process by asyncio clients
on keep-alive connections:

- network alone, ``--max-batch-size 32`` (batching) and ``1`` (none), at 1, 8 and 32 concurrent clients;
- the people path: 8 concurrent callers waiting on deferred samples while one scripted person polls
  ``/v1/people/next`` and answers at once through the HTTP API (the page's own calls).

The client shares the machine's cores with the server, so the figures are of this machine as a whole.
Target: batching at 32 clients at least 3 x the unbatched throughput. To show where the time goes, the
network's own forward pass is also timed in this process, per image at batch 1 and at batch 32. Prints a
table and writes ``OUT/serve.md`` and ``OUT/serve.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np
import torch
from PIL import Image

from hgen_ray.architectures import get_architecture
from hgen_ray.architectures.gate import FittedGate
from hgen_ray.bench.system import git_commit
from hgen_ray.config import Candidate, HumanChoice, load_config
from hgen_ray.data.splits import load_splits
from hgen_ray.hdnn import save_hdnn

CLIENTS = (1, 8, 32)
PEOPLE_CLIENTS = 8
TARGET_BATCHING_GAIN = 3.0  # the aim issue 18 set, not a measured figure
START_TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class Load:
    path: str
    clients: int
    batch: int
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def row(self) -> dict[str, float | int | str]:
        latency = np.array(self.latencies_ms)
        return {"path": self.path, "max_batch_size": self.batch, "clients": self.clients, "requests": self.requests,
                "requests_per_s": round(self.throughput, 1), "p50_ms": round(float(np.percentile(latency, 50)), 1),
                "p99_ms": round(float(np.percentile(latency, 99)), 1)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@torch.no_grad()
def _forward_ms_per_image(hdnn: Path, batch: int, repeats: int = 200) -> float:
    """The network and its gate alone, in this process, one thread: the part batching can amortise."""
    from hgen_ray.architectures.gate import gate_confidence
    from hgen_ray.hdnn import load_hdnn

    served = load_hdnn(hdnn)
    images = torch.rand(batch, *served.input_shape)
    gate_confidence(served.model, served.gate, images)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        gate_confidence(served.model, served.gate, images)
        times.append((time.perf_counter() - started) * 1000 / batch)
    return float(np.median(times))


def _hdnns(config_path: str, out: Path) -> tuple[Path, Path, list[bytes]]:
    """The trained base as two H-DNNs (never defers, always defers) and validation PNGs to send."""
    config = load_config(config_path)
    architecture = get_architecture(config.model.name)
    splits = load_splits(config.data, config.seed, with_test=False)  # payloads: validation images, never test
    base = architecture.trained_base(config, splits)  # type: ignore[attr-defined]
    gate = FittedGate("msp", base.temperature)
    folders = []
    for name, tau in (("model-only", 0.0), ("people", 1.01)):  # msp < 0 never holds; msp < 1.01 always does
        human = HumanChoice(mechanism="sequential", k=1, gate="msp", tau=tau, combine="replace")
        folders.append(save_hdnn(out / name / "best", base.model, gate, Candidate(human=human), config, (1, 28, 28)))
    pictures = []
    for image in splits.val_images[:256]:
        buffer = io.BytesIO()
        Image.fromarray(np.rint(image[0].numpy() * 255).astype(np.uint8)).save(buffer, format="PNG")
        pictures.append(buffer.getvalue())
    return folders[0], folders[1], pictures


class Server:
    def __init__(self, hdnn: Path, batch: int) -> None:
        self.port = _free_port()
        self.serve_dir = hdnn.parent / f"serve-batch-{batch}"
        log = hdnn.parent / f"serve-batch-{batch}.log"
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hgen_ray.cli", "serve", str(hdnn), "--port", str(self.port), "--out",
             str(self.serve_dir), "--max-batch-size", str(batch), "--calibration-rate", "0", "--people", "1",
             "--people-timeout-s", "600"], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "ready; Ctrl-C stops it" not in log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"serve did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        self.client = (self.serve_dir / "tokens" / "client").read_text().strip()
        self.person = (self.serve_dir / "tokens" / "people" / "person-1").read_text().strip()

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


async def _clients(server: Server, pictures: list[bytes], clients: int, requests: int) -> tuple[float, list[float]]:
    url = f"http://127.0.0.1:{server.port}/v1/predict"
    headers = {"Authorization": f"Bearer {server.client}"}
    latencies: list[float] = []
    counter = iter(range(requests))

    async def client(session: aiohttp.ClientSession) -> None:
        for n in counter:
            started = time.perf_counter()
            async with session.post(url, data=pictures[n % len(pictures)], headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _warm_up(session, url, headers, pictures[0])
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return time.perf_counter() - started, latencies


async def _warm_up(session: aiohttp.ClientSession, url: str, headers: dict[str, str], picture: bytes) -> None:
    for _ in range(5):
        async with session.post(url, data=picture, headers=headers) as response:
            await response.read()


async def _scripted_person(server: Server, stop: asyncio.Event) -> int:
    """Answers every look at once, as the page would: next, then answer."""
    base, headers, answered = f"http://127.0.0.1:{server.port}", {"Authorization": f"Bearer {server.person}"}, 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            async with session.get(f"{base}/v1/people/next", headers=headers) as response:
                look = await response.json()
            if look["look_id"] is None:
                await asyncio.sleep(0.01)
                continue
            async with session.post(f"{base}/v1/people/answer", headers=headers,
                                    json={"look_id": look["look_id"], "label": 1, "seconds": 0.0}) as response:
                assert response.status == 200
                answered += 1
    return answered


async def _people_path(server: Server, pictures: list[bytes], requests: int) -> tuple[float, list[float]]:
    stop = asyncio.Event()
    person = asyncio.create_task(_scripted_person(server, stop))
    seconds, latencies = await _clients(server, pictures, PEOPLE_CLIENTS, requests)
    stop.set()
    await person
    return seconds, latencies


def _report(loads: list[Load], forward_ms: dict[int, float], commit: str, command: str) -> str:
    rows = [load.row() for load in loads]
    keys = list(rows[0])
    table = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    table += ["| " + " | ".join(str(row[k]) for k in keys) + " |" for row in rows]
    by = {(load.path, load.batch, load.clients): load.throughput for load in loads}
    gain = by[("model", 32, 32)] / by[("model", 1, 32)]
    verdict = "MET" if gain >= TARGET_BATCHING_GAIN else "MISSED"
    return "\n".join([f"# hgen-ray serve: throughput and latency (commit {commit})", "",
                      f"Command: `{command}`. One machine: client and server share its cores.", "", *table, "",
                      f"Batching gain at 32 clients: {gain:.2f} x the unbatched throughput "
                      f"(target >= {TARGET_BATCHING_GAIN:.0f} x: {verdict}).",
                      f"The network's own forward pass, in-process: {forward_ms[1]:.3f} ms per image at batch 1, "
                      f"{forward_ms[32]:.3f} ms at batch 32 (median of 200). Batching can only amortise this share "
                      "of a request; the rest is HTTP, Serve's proxy-to-replica hop and the client.", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/quickstart.yaml")
    parser.add_argument("--requests", type=int, default=400, help="requests per load level")
    parser.add_argument("--out", default="runs/bench-serve")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    model_only, people, pictures = _hdnns(args.config, out)
    torch.set_num_threads(1)
    forward_ms = {batch: _forward_ms_per_image(model_only, batch) for batch in (1, 32)}
    loads = []
    for batch in (32, 1):
        server = Server(model_only, batch)
        try:
            for clients in CLIENTS:
                seconds, latencies = asyncio.run(_clients(server, pictures, clients, args.requests))
                loads.append(Load("model", clients, batch, args.requests, seconds, latencies))
                print(loads[-1].row(), flush=True)
        finally:
            server.stop()
    server = Server(people, 32)
    try:
        seconds, latencies = asyncio.run(_people_path(server, pictures, args.requests // 4))
        loads.append(Load("people (1 scripted person)", PEOPLE_CLIENTS, 32, args.requests // 4, seconds, latencies))
        print(loads[-1].row(), flush=True)
    finally:
        server.stop()
    report = _report(loads, forward_ms, git_commit(), " ".join(["python", *sys.argv]))
    (out / "serve.md").write_text(report)
    (out / "serve.json").write_text(json.dumps({"loads": [load.row() for load in loads],
                                                "forward_ms_per_image": forward_ms}, indent=2))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
