"""The Ray Serve application: the network and its gate behind ``/v1/predict``, and the people behind ``/people``.

One replica holds the people queue (:mod:`hgen_ray.serve.people_queue`): the callers waiting on a deferred
sample wait in its event loop, and the page's answers wake them. The network runs in batches gathered by
``serve.batch`` (``serve.max_batch_size``; 1 runs each request alone).

Routes (``Authorization: Bearer <token>``; the client's token for ``/v1/predict``, ``/v1/answers`` and
``/v1/stats``, a person's for ``/v1/people/...``; a missing or unknown token gets 401, the other role's 403):

- ``POST /v1/predict[?wait=false]``: a PNG, JPEG or ``.npy`` body; the answer, or a ticket when ``wait=false``.
- ``GET /v1/answers/{id}``: a ticket's answer, or ``waiting``.
- ``GET /v1/stats``: the queue, people active, answers per minute, utilisation, turnaround p50 and p95.
- ``GET /people``: the page (plain HTML and JavaScript from this package; nothing from elsewhere).
- ``GET /v1/people/me``, ``GET /v1/people/next``, ``POST /v1/people/answer``: what the page calls.
"""


import asyncio
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from ray import serve

from hgen_ray.architectures.gate import defer_mask, gate_confidence
from hgen_ray.config import ServeConfig
from hgen_ray.hdnn import load_hdnn
from hgen_ray.serve.chain import ChainRule
from hgen_ray.serve.images import ImageError, decode_image, png_data_url
from hgen_ray.serve.people_queue import Look, LookError, PeopleQueue, RequestState
from hgen_ray.serve.tokens import CLIENT, PERSON, Tokens

__all__ = ["CalibrationImages", "HDNNService", "Inference", "ServeSettings"]

PAGE = Path(__file__).parent / "page"
PAGE_FILES = {"people.js": "text/javascript", "people.css": "text/css"}
# the page runs only its own script and shows images sent inline; nothing is fetched from elsewhere
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

api = FastAPI(title="hgen-ray serve", docs_url=None, redoc_url=None, openapi_url=None)


@dataclass(frozen=True)
class ServeSettings:
    hdnn_dir: str
    serve_dir: str
    class_names: tuple[str, ...]
    rule: ChainRule
    options: ServeConfig  # the H-DNN's serve block with the flags over it
    seed: int


@dataclass(frozen=True)
class CalibrationImages:
    """Held-out test images with their category, severity and label: what people are measured on."""

    images: np.ndarray  # [N, C, H, W] float32 in [0, 1]
    labels: np.ndarray
    categories: tuple[str, ...]
    severities: np.ndarray


@dataclass(frozen=True)
class Inference:
    label: int
    probabilities: list[float]
    gate_score: float
    deferred: bool


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@serve.deployment(max_ongoing_requests=1000, ray_actor_options={"num_cpus": 0})
@serve.ingress(api)
class HDNNService:
    """One saved H-DNN with its people queue (one replica: the queue and the waiting callers live here)."""

    def __init__(self, settings: ServeSettings, tokens: Tokens, calibration: CalibrationImages | None) -> None:
        torch.set_num_threads(1)  # one request's batch at a time; more threads only contend on a small CPU
        self.settings, self.tokens, self.calibration = settings, tokens, calibration
        self.hdnn = load_hdnn(settings.hdnn_dir)
        serve_dir = Path(settings.serve_dir)
        self.queue = PeopleQueue(serve_dir / "queue.sqlite", serve_dir / "answers.csv", settings.rule,
                                 settings.options.people_timeout_s, settings.options.answer_lease_s)
        self.waiters: dict[str, asyncio.Event] = {}
        self.rng = np.random.default_rng(settings.seed)
        self._batched.set_max_batch_size(settings.options.max_batch_size)
        self._batched.set_batch_wait_timeout_s(settings.options.batch_wait_ms / 1000.0)

    # --- the network ---------------------------------------------------------------------------------

    @torch.no_grad()
    def _infer(self, images: list[np.ndarray]) -> list[Inference]:
        batch = torch.from_numpy(np.stack(images))
        logits, confidence = gate_confidence(self.hdnn.model, self.hdnn.gate, batch)
        deferred = defer_mask(confidence, self.hdnn.gate.score, self.hdnn.candidate.human.tau)
        probabilities = torch.softmax(logits / self.hdnn.gate.temperature, dim=1)
        return [Inference(int(p.argmax()), p.tolist(), float(c), bool(d))
                for p, c, d in zip(probabilities, confidence, deferred)]

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _batched(self, images: list[np.ndarray]) -> list[Inference]:
        return self._infer(images)

    async def _inference(self, image: np.ndarray) -> Inference:
        if self.settings.options.max_batch_size == 1:
            return self._infer([image])[0]
        return await self._batched(image)

    # --- who is asking -------------------------------------------------------------------------------

    def _holder(self, request: Request, role: str) -> tuple[str | None, JSONResponse | None]:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None, _error(401, "missing token; allowed: an 'Authorization: Bearer <token>' header")
        holder = self.tokens.holder(presented.strip())
        if holder is None:
            return None, _error(401, "unknown token; allowed: a token from the serve folder's tokens/")
        if holder[0] != role:
            wanted = "the client token (tokens/client)" if role == CLIENT else "a person's token (tokens/people/)"
            return None, _error(403, f"this route is not for a {holder[0]} token; allowed: {wanted}")
        return holder[1], None

    # --- the client API ------------------------------------------------------------------------------

    def _model_answer(self, inference: Inference) -> dict[str, object]:
        return {"label": inference.label, "class_name": self.settings.class_names[inference.label], "source": "model",
                "confidence": max(inference.probabilities), "gate_score": inference.gate_score}

    def _state_answer(self, state: RequestState) -> dict[str, object]:
        final = state.network_label if state.final_label is None else state.final_label
        return {"id": state.id, "state": state.state, "label": final, "class_name": self.settings.class_names[final],
                "source": state.source, "gate_score": state.gate_score,
                "turnaround_s": None if state.finished_at is None else state.finished_at - state.created_at}

    @api.post("/v1/predict")
    async def predict(self, request: Request, wait: bool = True) -> Response:
        _, refused = self._holder(request, CLIENT)
        if refused:
            return refused
        try:
            body = await self._capped_body(request)
            image = decode_image(body, self.hdnn.input_shape, self.settings.options.max_upload_bytes)
        except ImageError as error:
            return _error(400, str(error))
        inference = await self._inference(image)
        if not inference.deferred:
            return JSONResponse(self._model_answer(inference))
        arrived = time.time()
        request_id = self.queue.add(image, inference.label, inference.probabilities, inference.gate_score, arrived)
        if not wait:
            return JSONResponse({"id": request_id, "state": "waiting", "source": "waiting for people",
                                 "answers_at": f"/v1/answers/{request_id}"}, status_code=202)
        event = self.waiters.setdefault(request_id, asyncio.Event())
        now = None
        try:
            await asyncio.wait_for(event.wait(), timeout=self.settings.options.people_timeout_s)
        except asyncio.TimeoutError:  # the loop's clock said so; the queue's wall clock must agree
            now = max(time.time(), arrived + self.settings.options.people_timeout_s)
        finally:
            self.waiters.pop(request_id, None)
        state = self.queue.state(request_id, now or time.time())
        assert state is not None
        return JSONResponse(self._state_answer(state))

    async def _capped_body(self, request: Request) -> bytes:
        """The body, read no further than the cap: a larger one is refused before it is all in memory."""
        cap = self.settings.options.max_upload_bytes
        too_large = ImageError(f"the body is over {cap} bytes; allowed: at most {cap} (serve.max_upload_bytes)")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > cap:
                raise too_large
        return bytes(body)

    @api.get("/v1/answers/{request_id}")
    async def answer_of(self, request: Request, request_id: str) -> Response:
        _, refused = self._holder(request, CLIENT)
        if refused:
            return refused
        state = self.queue.state(request_id, time.time())
        if state is None:
            return _error(404, f"no request {request_id!r}; allowed: an id /v1/predict?wait=false returned")
        return JSONResponse(self._state_answer(state))

    @api.get("/v1/stats")
    async def stats(self, request: Request) -> Response:
        _, refused = self._holder(request, CLIENT)
        if refused:
            return refused
        return JSONResponse(self.queue.stats(time.time(), len(self.tokens.people)))

    # --- the people ----------------------------------------------------------------------------------

    @api.get("/people")
    async def page(self) -> Response:
        return FileResponse(PAGE / "people.html", media_type="text/html", headers={"Content-Security-Policy":
                                                                                   PAGE_POLICY})

    @api.get("/people/{name}")
    async def page_file(self, name: str) -> Response:
        if name not in PAGE_FILES:
            return _error(404, f"no page file {name!r}; allowed: {', '.join(PAGE_FILES)}")
        return FileResponse(PAGE / name, media_type=PAGE_FILES[name])

    @api.get("/v1/people/me")
    async def me(self, request: Request) -> Response:
        person, refused = self._holder(request, PERSON)
        if refused:
            return refused
        return JSONResponse({"person": person, "classes": list(self.settings.class_names)})

    def _calibration_look(self, person: str) -> Look | None:
        pool = self.calibration
        if pool is None or self.rng.random() >= self.settings.options.calibration_rate:
            return None
        index = int(self.rng.integers(len(pool.labels)))
        return self.queue.calibration_look(person, pool.images[index], pool.categories[index],
                                           int(pool.severities[index]), int(pool.labels[index]), time.time())

    @api.get("/v1/people/next")
    async def next_look(self, request: Request) -> Response:
        person, refused = self._holder(request, PERSON)
        if refused:
            return refused
        assert person is not None
        look = self._calibration_look(person) or self.queue.next_request_look(person, time.time())
        if look is None:
            return JSONResponse({"look_id": None, "queue_length": 0})
        return JSONResponse({"look_id": look.id, "image": png_data_url(look.image)})

    @api.post("/v1/people/answer")
    async def record_answer(self, request: Request) -> Response:
        person, refused = self._holder(request, PERSON)
        if refused:
            return refused
        assert person is not None
        classes = len(self.settings.class_names)
        try:
            body = await request.json()
            look_id, label, seconds = str(body["look_id"]), int(body["label"]), float(body["seconds"])
        except Exception:  # any malformed body earns the same one line
            return _error(400, 'expected JSON {"look_id": str, "label": int, "seconds": number}')
        if not math.isfinite(seconds) or seconds < 0:  # JSON parsers here accept NaN and Infinity
            return _error(400, f"seconds={seconds}; allowed: a finite number of seconds, 0 or more")
        if not 0 <= label < classes:
            return _error(400, f"label {label} is not a class; allowed: 0 to {classes - 1}")
        try:
            finished = self.queue.answer(look_id, person, label, seconds, time.time())
        except LookError as error:
            return _error(409, str(error))
        if finished and finished in self.waiters:
            self.waiters[finished].set()
        return JSONResponse({"recorded": True})
