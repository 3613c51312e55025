"""``hgen-ray serve`` for real: its own Ray and Ray Serve, HTTP from outside, people in headless Chromium.

One server process serves a trained tiny H-DNN for the whole module (a start costs about half a minute);
the restart test kills it, process group and all, and starts it again on the same serve folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hgen_ray.architectures.classifier import TrainedBase
from hgen_ray.architectures.gate import FittedGate, gate_confidence
from hgen_ray.config import Candidate, ExperimentConfig, HumanChoice
from hgen_ray.data.splits import Splits
from hgen_ray.hdnn import save_hdnn

REPO = Path(__file__).resolve().parents[2]
ARTEFACTS = REPO / "runs" / "test-artefacts"
START_TIMEOUT_S = 180.0
PEOPLE_TIMEOUT_S = 120.0  # long enough that no request here falls back to the network by accident


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    hdnn: Path
    serve_dir: Path
    port: int
    process: subprocess.Popen | None = None
    log: Path | None = None
    starts: int = field(default=0)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, who: str) -> str:
        path = self.serve_dir / "tokens" / ("client" if who == "client" else f"people/{who}")
        return path.read_text().strip()

    def start(self, *flags: str) -> None:
        self.starts += 1
        self.log = self.serve_dir.parent / f"serve-{self.starts}.log"
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own local Ray, as a user's
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hgen_ray.cli", "serve", str(self.hdnn), "--port", str(self.port), "--people", "2",
             "--people-timeout-s", str(PEOPLE_TIMEOUT_S), *flags],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "ready; Ctrl-C stops it" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL the command and everything it started (its Ray node dies with it), then wait for the port."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not a listener
                try:
                    probe.bind(("127.0.0.1", self.port))
                    return
                except OSError:
                    time.sleep(0.5)
        raise AssertionError(f"port {self.port} still held a minute after the kill")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def call(self, path: str, who: str | None = "client", body: bytes | None = None,
             json_body: dict | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {self.token(who)}"} if who else {}
        if json_body is not None:
            body, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
        request = urllib.request.Request(self.base + path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=PEOPLE_TIMEOUT_S + 30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@dataclass(frozen=True)
class Samples:
    deferred: list[bytes]  # PNGs the gate sends to people
    confident: list[bytes]  # PNGs the network answers alone
    network_labels: list[int]  # the network's class for each deferred PNG


def _png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.rint(image[0].numpy() * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def samples_and_hdnn(tmp_path_factory: pytest.TempPathFactory, tiny_config: ExperimentConfig,
                     trained_base: TrainedBase, splits: Splits) -> tuple[Samples, Path]:
    """The trained tiny H-CNN with its msp gate at the validation median: about half of what it sees defers."""
    gate = FittedGate("msp", trained_base.temperature)
    _, validation = gate_confidence(trained_base.model, gate, splits.val_images[:400])
    tau = float(validation.median())
    human = HumanChoice(mechanism="majority", k=2, gate="msp", tau=tau, combine="replace")
    folder = tmp_path_factory.mktemp("run") / "best"
    save_hdnn(folder, trained_base.model, gate, Candidate(human=human), tiny_config, (1, 28, 28))
    assert splits.test_images is not None
    images = torch.round(splits.test_images[:300] * 255) / 255  # what a PNG carries
    logits, confidence = gate_confidence(trained_base.model, gate, images)
    order = torch.argsort(confidence)
    low, high = order[:3].tolist(), order[-2:].tolist()
    assert confidence[low].max() < tau < confidence[high].min()
    return Samples([_png(images[i]) for i in low], [_png(images[i]) for i in high],
                   [int(logits[i].argmax()) for i in low]), folder


@pytest.fixture(scope="module")
def server(samples_and_hdnn: tuple[Samples, Path]) -> Iterator[Server]:
    _, folder = samples_and_hdnn
    running = Server(folder, folder.parent / "serve", _free_port())
    running.start("--calibration-rate", "0")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def samples(samples_and_hdnn: tuple[Samples, Path]) -> Samples:
    return samples_and_hdnn[0]


def _answers(server: Server) -> list[dict[str, str]]:
    path = server.serve_dir / "answers.csv"
    if not path.exists():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_tokens_are_private_and_each_route_takes_only_its_own(server: Server, samples: Samples) -> None:
    tokens = server.serve_dir / "tokens"
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in [tokens / "client", *(tokens / "people").iterdir()])
    log = server.log.read_text() if server.log else ""
    assert server.token("client") not in log and server.token("person-1") not in log  # never printed
    picture = samples.confident[0]
    assert server.call("/v1/predict", who=None, body=picture)[0] == 401
    assert server.call("/v1/people/next", who=None)[0] == 401
    assert server.call("/v1/predict", who="person-1", body=picture)[0] == 403
    assert server.call("/v1/stats", who="person-2")[0] == 403
    assert server.call("/v1/people/next", who="client")[0] == 403
    status, refused = server.call("/v1/people/answer", who="client", json_body={"look_id": "x", "label": 1,
                                                                                "seconds": 1})
    assert status == 403 and "person" in refused["error"]
    headers = {"Authorization": "Bearer " + "x" * 43}
    request = urllib.request.Request(server.base + "/v1/stats", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as unknown:
        urllib.request.urlopen(request, timeout=30)
    assert unknown.value.code == 401


def test_a_bad_upload_gets_a_400_with_one_line(server: Server) -> None:
    wrong_size = io.BytesIO()
    Image.new("L", (32, 32)).save(wrong_size, format="PNG")
    for body, names in ((wrong_size.getvalue(), "32x32"), (b"not an image", "not an image"),
                        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 2_000_000, "at most")):
        status, answer = server.call("/v1/predict", body=body)
        assert status == 400 and names in answer["error"] and "allowed:" in answer["error"]
        assert "Traceback" not in answer["error"] and "\n" not in answer["error"]


def test_an_answer_the_page_could_not_have_sent_gets_a_400_and_changes_nothing(server: Server) -> None:
    before = _answers(server)
    for body, names in (({"look_id": "x", "label": 1, "seconds": float("nan")}, "seconds=nan"),
                        ({"look_id": "x", "label": 1, "seconds": -2}, "seconds=-2"),
                        ({"look_id": "x", "label": 10, "seconds": 1}, "label 10 is not a class"),
                        ({"look_id": "x", "label": 1}, "expected JSON")):
        status, answer = server.call("/v1/people/answer", who="person-1", json_body=body)
        assert status == 400 and names in answer["error"] and "\n" not in answer["error"], answer
    assert _answers(server) == before


def _browser(tmp_path: Path):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--window-size=900,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _answer_in_the_page(driver, server: Server, person: str, label: int, count: int, by_key: bool,  # type: ignore[no-untyped-def]
                        screenshot: Path | None = None) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{server.base}/people#token={server.token(person)}")
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: person in d.find_element(By.ID, "who").text)
    assert "token" not in driver.current_url  # the token left the address bar
    for done in range(1, count + 1):
        wait.until(lambda d: d.find_element(By.ID, "task").is_displayed() and
                   d.find_element(By.ID, "image").get_attribute("src").startswith("data:image/png"))
        wait.until(lambda d: d.execute_script("return document.getElementById('image').complete"))
        if screenshot is not None and done == 1:
            driver.save_screenshot(str(screenshot))
        time.sleep(0.3)  # a person takes a moment: seconds must be measured, not zero
        if by_key:
            driver.find_element(By.TAG_NAME, "body").send_keys("1234567890"[label])
        else:
            driver.find_element(By.CSS_SELECTOR, f"#classes button[data-label='{label}']").click()
        wait.until(lambda d: d.find_element(By.ID, "answered").text == str(done))
    wait.until(lambda d: "Nothing is waiting" in d.find_element(By.ID, "status").text)


def test_people_in_a_real_browser_answer_the_waiting_callers(server: Server, samples: Samples,
                                                             tmp_path: Path) -> None:
    status, confident = server.call("/v1/predict", body=samples.confident[0])
    assert status == 200 and confident["source"] == "model" and confident["gate_score"] >= 0
    people_label = next(c for c in range(10) if c not in samples.network_labels[:2])
    results: dict[int, tuple[int, dict]] = {}
    callers = [threading.Thread(target=lambda i=i: results.__setitem__(i, server.call("/v1/predict",
                                                                                     body=samples.deferred[i])))
               for i in range(2)]
    for caller in callers:
        caller.start()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / "people-page.png"
    screenshot.unlink(missing_ok=True)
    driver = _browser(tmp_path)
    try:
        _answer_in_the_page(driver, server, "person-1", people_label, 2, by_key=False, screenshot=screenshot)
        _answer_in_the_page(driver, server, "person-2", people_label, 2, by_key=True)
    finally:
        driver.quit()
    for caller in callers:
        caller.join(timeout=60)
    for i in range(2):
        status, answer = results[i]
        assert status == 200 and answer["source"] == "people" and answer["label"] == people_label
        assert answer["label"] != samples.network_labels[i] and answer["turnaround_s"] > 0.3
    rows = [r for r in _answers(server) if not r["category"]]
    assert sorted(r["person"] for r in rows) == ["person-1", "person-1", "person-2", "person-2"]
    assert {r["label"] for r in rows} == {str(people_label)}
    assert all(0.25 < float(r["seconds"]) < 30 for r in rows)  # the page's timing, around the 0.3 s pause
    assert all(float(r["answered_at"]) > float(r["shown_at"]) for r in rows)
    stats = server.call("/v1/stats")[1]
    assert stats["answers_total"] == 4 and stats["deferred_answered"] == 2 and stats["queue_length"] == 0
    assert stats["people_active"] == 2 and stats["answers_per_minute"] == pytest.approx(4 / 5)
    assert 0.3 < stats["turnaround_s_p50"] <= stats["turnaround_s_p95"] < 60
    picture = np.asarray(Image.open(screenshot).convert("RGB"))
    assert picture.shape[0] > 300 and picture.std() > 20 and len(np.unique(picture.reshape(-1, 3), axis=0)) > 50


def _answer_over_http(server: Server, person: str, label: int) -> list[dict]:
    """Everything waiting for ``person``, answered through the API the page uses; the looks shown."""
    shown = []
    for _ in range(40):
        status, look = server.call("/v1/people/next", who=person)
        assert status == 200
        if look["look_id"] is None:
            return shown
        assert set(look) == {"look_id", "image"}  # an image to answer, and nothing about anyone's answers
        shown.append(look)
        assert server.call("/v1/people/answer", who=person,
                           json_body={"look_id": look["look_id"], "label": label, "seconds": 1.0})[0] == 200
    return shown


def test_a_killed_app_loses_no_queued_request_and_no_answer(server: Server, samples: Samples) -> None:
    before = _answers(server)
    tickets = []
    for picture in samples.deferred[:2]:
        status, ticket = server.call("/v1/predict?wait=false", body=picture)
        assert status == 202 and ticket["state"] == "waiting"
        tickets.append(ticket["id"])
    assert server.call("/v1/people/next", who="person-1")[1]["look_id"]  # shown, never answered: dropped on restart
    server.kill()
    server.start("--calibration-rate", "0.5")  # now half of the looks are known test images
    assert [server.call(f"/v1/answers/{t}")[1]["state"] for t in tickets] == ["waiting", "waiting"]
    _answer_over_http(server, "person-1", 4)
    _answer_over_http(server, "person-2", 4)
    for ticket in tickets:
        status, answer = server.call(f"/v1/answers/{ticket}")
        assert status == 200 and (answer["state"], answer["source"], answer["label"]) == ("answered", "people", 4)
    after = _answers(server)
    assert after[:len(before)] == before  # nothing written before was lost or rewritten
    new = after[len(before):]
    assert sorted((r["request_id"], r["person"]) for r in new if not r["category"]) == sorted(
        (t, p) for t in tickets for p in ("person-1", "person-2"))
    calibration = [r for r in new if r["category"]]
    assert calibration and all(r["request_id"].startswith("calibration-") and r["true_label"] != ""
                               for r in calibration)
    assert server.call("/v1/answers/no-such-id")[0] == 404


def test_a_folder_that_is_not_an_h_dnn_or_a_busy_port_gets_one_line_and_exit_2(tmp_path: Path,
                                                                               server: Server) -> None:
    cases = [([str(tmp_path), "--port", str(_free_port())], "not a saved H-DNN"),
             ([str(server.hdnn), "--port", str(server.port), "--out", str(tmp_path / "other")], "is not free"),
             ([str(server.hdnn), "--calibration-rate", "2", "--out", str(tmp_path / "other")],
              "serve.calibration_rate")]
    for arguments, names in cases:
        done = subprocess.run([sys.executable, "-m", "hgen_ray.cli", "serve", *arguments], capture_output=True,
                              text=True, cwd=REPO, timeout=120)
        assert done.returncode == 2, done.stderr
        assert names in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "other").exists()  # refused before anything was written


def test_unanswered_samples_fall_back_to_the_network_when_people_time_out(server: Server,
                                                                          samples: Samples) -> None:
    server.kill()
    server.start("--people-timeout-s", "3", "--max-batch-size", "1", "--calibration-rate", "0")  # no batching
    status, confident = server.call("/v1/predict", body=samples.confident[1])
    assert status == 200 and confident["source"] == "model"
    status, ticket = server.call("/v1/predict?wait=false", body=samples.deferred[2])
    assert status == 202
    started = time.monotonic()
    status, answer = server.call("/v1/predict", body=samples.deferred[2])
    assert status == 200 and time.monotonic() - started >= 2.9
    assert (answer["source"], answer["label"]) == ("model, people timed out", samples.network_labels[2])
    status, late = server.call(f"/v1/answers/{ticket['id']}")
    assert (late["state"], late["source"]) == ("timed_out", "model, people timed out")
    assert late["turnaround_s"] == pytest.approx(3.0)  # the timeout, not whenever it was next asked about
    assert server.call("/v1/people/next", who="person-1")[1]["look_id"] is None  # no longer shown to anyone
