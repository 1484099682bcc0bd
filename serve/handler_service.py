"""The handler service multi-model-server runs in each worker (`default_service_handler`).

Built on sagemaker-inference's DefaultHandlerService and Transformer, with the parts AWS's
toolkit does not give: JSON errors with the right 4xx instead of a 500 carrying a traceback,
top_k from custom attributes, batches of base64 images, and one log line per request.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from http import HTTPStatus
from pathlib import Path

import numpy as np
from sagemaker_inference.default_handler_service import DefaultHandlerService
from sagemaker_inference.transformer import Transformer

from serve import codec, memory
from serve.config import DEFAULT_TOP_K, READY_DIR_ENV, UNLOAD_PREFIX, read_config
from serve.model import OnnxClassifier, served_file

log = logging.getLogger("serve.requests")


class ClassifierTransformer(Transformer):
    def __init__(self):
        super().__init__()
        self.config = read_config()
        self.limits = codec.ImageLimits.of(self.config)
        self.model: OnnxClassifier | None = None

    def validate_and_initialize(self, model_dir=None, context=None):
        if self.model is not None:
            return
        started = time.perf_counter()
        if self.config.multi_model:  # a 507 instead of an OOM kill when the endpoint is full (serve/memory.py)
            try:
                memory.require_room(served_file(Path(model_dir), self.config.precision),
                                    self.config.memory_headroom_mb)
            except MemoryError as error:
                log.error("%s", error)
                _ask_unload(getattr(context, "model_name", None))
                raise
        self.model = OnnxClassifier(Path(model_dir), threads=self.config.threads_per_worker,
                                    precision=self.config.precision)
        self.model.warm_up()
        if self.model.int8_fallback:  # each model of a multi-model endpoint says it too, not the launcher alone
            log.warning("%s", self.model.int8_fallback)
        self._initialized = True
        _mark_ready()
        log.info("model loaded from %s: %s (%s), %d classes, %d ONNX Runtime thread(s), warm in %.2f s", model_dir,
                 self.model.model_file, self.model.precision, self.model.num_classes,
                 self.config.threads_per_worker, time.perf_counter() - started)

    def transform(self, data, context):
        return [self._one(request, index, context) for index, request in enumerate(data)]

    def _one(self, request: dict, index: int, context) -> bytes:
        stages = StageClock()
        headers = {k.lower(): v for k, v in (context.get_all_request_header(index) or {}).items()}
        body = bytes(request.get("body") or request.get("data") or b"")
        sizes = []
        status = 200
        try:
            content_type = codec.choose_accept(headers.get("accept"), self.config.default_accept)
            top_k = codec.parse_top_k(headers.get(codec.CUSTOM_ATTRIBUTES_HEADER.lower()), self.model.num_classes,
                                      DEFAULT_TOP_K)
            images, batch = codec.open_images(
                body, codec.media_type(headers.get("content-type")), self.limits,
                self.model.preprocess.resize if self.model.preprocess.jpeg_draft else None)
            # one image decoded at a time, released once it is the model's input (a few hundred KB)
            inputs = []
            try:
                for position, image in enumerate(images):
                    stages.start("decode")
                    rgb = codec.load(image, position if batch else None)
                    sizes.append(rgb.size)
                    stages.start("preprocess")
                    inputs.append(self.model.preprocess(rgb))
                    del rgb
            finally:
                for image in images:
                    image.close()
            stages.start("model")
            probabilities = self.model.predict(inputs[0][None] if len(inputs) == 1 else np.stack(inputs))
            stages.start("encode")
            payload = codec.encode(probabilities, self.model.classes, content_type, top_k, batch)
        except codec.RequestError as error:
            status, content_type, payload = error.status, codec.JSON, codec.error_body(error.message)
        except Exception:  # noqa: BLE001 - never a traceback in a response; it goes to the log
            log.error("internal error:\n%s", traceback.format_exc())
            status, content_type, payload = 500, codec.JSON, codec.error_body(
                "internal error while classifying; the endpoint's log has the details")
        if status != 200:
            context.set_response_status(code=status, phrase=HTTPStatus(status).phrase, idx=index)
        context.set_response_content_type(index, content_type)
        stages.start(None)
        log.info("status=%d latency_ms=%.2f %s bytes=%d images=%s accept=%s", status, stages.total_ms(),
                 stages.summary(), len(body), ",".join(f"{w}x{h}" for w, h in sizes) or "-", content_type)
        return payload


class StageClock:
    """Where a request's time goes inside the worker: each stage runs from its start() to the next one's;
    the time before the first stage (headers, checks) counts as `parse`. The log line carries every stage,
    so a latency figure can be split without a profiler (bench/serve_latency.py reads them)."""

    STAGES = ("parse", "decode", "preprocess", "model", "encode")

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.began = self.mark = clock()
        self.current: str | None = "parse"
        self.spent = dict.fromkeys(self.STAGES, 0.0)

    def start(self, stage: str | None) -> None:
        """End the running stage and start `stage` (None: the request is done; the rest counts as encode)."""
        now = self.clock()
        self.spent[self.current or "encode"] += now - self.mark
        self.current, self.mark = stage, now

    def total_ms(self) -> float:
        return (self.mark - self.began) * 1000

    def summary(self) -> str:
        return " ".join(f"{stage}_ms={seconds * 1000:.2f}" for stage, seconds in self.spent.items())


def _ask_unload(model_name: str | None) -> None:
    """multi-model-server answers the 507, then fails to unregister the model itself and leaves it registered
    with no worker, so SageMaker's retry after freeing memory would get 409: the launcher unregisters it
    (serve/server.py: ModelServer.unregister_failed_loads)."""
    state_dir = os.environ.get(READY_DIR_ENV)
    if state_dir and model_name:
        (Path(state_dir) / f"{UNLOAD_PREFIX}{model_name}").touch()


def _mark_ready() -> None:
    """Tell the launcher this worker has loaded and warmed the model (MMS's own worker status says READY
    as soon as the process runs, before the model loads)."""
    state_dir = os.environ.get(READY_DIR_ENV)
    if state_dir:
        (Path(state_dir) / f"worker-{os.getpid()}.ready").touch()


class HandlerService(DefaultHandlerService):
    def __init__(self):
        super().__init__(transformer=ClassifierTransformer())

    def initialize(self, context):
        self._service.validate_and_initialize(model_dir=context.system_properties.get("model_dir"), context=context)


_service = HandlerService()


def handle(data, context):
    """multi-model-server's entry point: called with data=None once at load, then per request batch."""
    if _service._service.model is None:
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(levelname)s %(message)s")
        # MMS's per-request "[METRICS]" lines: formatted, written and parsed by the frontend, which drops them
        # (sagemaker-inference's log4j config keeps MODEL_METRICS at warn); our log line has the timings
        logging.getLogger("mms.service").setLevel(logging.WARNING)
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
