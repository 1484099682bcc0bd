"""Property-based fuzz of request decoding: the handler's whole request path, in-process, for a fixed time.

Hypothesis builds requests (content types, accept headers, custom attributes, bodies: random
bytes, real images with flipped bytes or cut short, JSON batches of those) and feeds them to the
same ClassifierTransformer multi-model-server runs, with a real ONNX model. The property: every
request gets 200 with a prediction or a 4xx with a JSON error; never a 500, never an exception.
Hypothesis' `fuzz_one_input` runs it on random buffers until FUZZ_SECONDS (default 20) pass.
Meanwhile every socket connection is refused and recorded: the handler never fetches anything.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import random
import socket
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reliability.corpus import image
from serve import codec

FUZZ_SECONDS = float(os.environ.get("FUZZ_SECONDS", "20"))


SEEDS = [image(fmt, mode, size=(48, 36)) for fmt, mode in (
    ("JPEG", "RGB"), ("PNG", "RGBA"), ("GIF", "P"), ("TIFF", "CMYK"), ("BMP", "RGB"), ("WEBP", "RGB"),
    ("PNG", "I;16"), ("JPEG", "L"))]


@st.composite
def mutated_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


image_bodies = st.one_of(mutated_images(), st.binary(max_size=2048))
b64_values = st.one_of(image_bodies.map(lambda b: base64.b64encode(b).decode()), st.text(max_size=40))
json_bodies = st.one_of(
    st.lists(st.one_of(st.fixed_dictionaries({"b64": b64_values}), st.integers(), st.text(max_size=10),
                       st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)), max_size=70)
    .map(lambda instances: json.dumps({"instances": instances}).encode()),
    st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=10),
                 lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                    max_size=3))
    .map(lambda document: json.dumps(document).encode()),
    st.binary(max_size=256),
)
content_types = st.one_of(st.sampled_from([*codec.IMAGE_TYPES, codec.JSON, "", "text/plain", "image/jpeg; q=1",
                                           "IMAGE/PNG", "application/x-npy"]), st.text(max_size=30))
accepts = st.one_of(st.none(), st.sampled_from(["application/json", "application/x-npy", "*/*", "text/csv",
                                                "application/json;q=0.5, application/x-npy", ""]),
                    st.text(max_size=30))
attributes = st.one_of(st.none(), st.integers(-10**30, 10**30).map(lambda k: f"top_k={k}"),
                       st.text(max_size=30).map(lambda v: f"top_k={v}"), st.text(max_size=40))


class FakeContext:
    """What multi-model-server hands the handler: request headers in, status and content type out."""

    def __init__(self, headers: dict):
        self.headers, self.status, self.content_type = headers, 200, None

    def get_all_request_header(self, index):
        return self.headers

    def set_response_status(self, code, phrase, idx):
        self.status = code

    def set_response_content_type(self, index, content_type):
        self.content_type = content_type


@pytest.fixture(scope="module")
def transformer(trained_model_dir):
    os.environ["SAGEMAKER_MAX_PAYLOAD_IN_MB"] = "1"
    try:
        from serve.handler_service import ClassifierTransformer

        handler = ClassifierTransformer()
        handler.validate_and_initialize(model_dir=str(trained_model_dir))
        yield handler
    finally:
        del os.environ["SAGEMAKER_MAX_PAYLOAD_IN_MB"]


def check_request(transformer, body: bytes, content_type: str, accept, attribute) -> int:
    headers = {"Content-Type": content_type}
    if accept is not None:
        headers["Accept"] = accept
    if attribute is not None:
        headers[codec.CUSTOM_ATTRIBUTES_HEADER] = attribute
    context = FakeContext(headers)
    [payload] = transformer.transform([{"body": body}], context)
    assert context.status in (200, 400, 406, 413, 415), (context.status, payload[:300])
    if context.content_type == codec.NPY:
        assert context.status == 200
        return context.status
    document = json.loads(payload)
    if context.status == 200:
        assert all("label" in answer for answer in (document if isinstance(document, list) else [document]))
    else:
        assert isinstance(document["error"], str) and "Traceback" not in document["error"]
    return context.status


@pytest.fixture
def no_network(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] or kwargs)
        raise OSError("the serving path must not open connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_every_request_gets_a_prediction_or_a_json_4xx(transformer, no_network):
    @given(body=st.one_of(image_bodies, json_bodies), content_type=content_types, accept=accepts,
           attribute=attributes)
    def property_holds(body, content_type, accept, attribute):
        statuses[check_request(transformer, body, content_type, accept, attribute)] += 1

    statuses = collections.Counter()

    generator = random.Random(20261127)
    deadline = time.monotonic() + FUZZ_SECONDS
    runs = 0
    while time.monotonic() < deadline:
        property_holds.hypothesis.fuzz_one_input(generator.randbytes(generator.randint(16, 4096)))
        runs += 1
    print(f"fuzz: {runs} requests in {FUZZ_SECONDS:.0f} s, statuses {dict(sorted(statuses.items()))}")
    assert runs > 50 and {200, 400, 406, 415} <= set(statuses)  # it reached the model and the common refusals
    assert no_network == []


@pytest.mark.parametrize("body, content_type, status", [
    (SEEDS[0], "image/jpeg", 200), (SEEDS[1][:60], "image/png", 400),
    (b"{\"instances\": [{\"b64\": \"\"}]}", "application/json", 400), (SEEDS[0], "text/plain", 415)])
def test_the_fuzz_property_tells_answers_apart(transformer, body, content_type, status):
    assert check_request(transformer, body, content_type, None, None) == status
