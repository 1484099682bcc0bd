"""Property-based fuzz of request decoding: the handler's whole request path, in-process, a fixed number of requests.

Hypothesis builds requests (content types, accept headers, custom attributes of any Unicode and
of thousands of digits, bodies: random bytes, real images with flipped bytes or cut short, JSON
batches of those, JSON nested hundreds of thousands deep) and feeds them to the same
ClassifierTransformer multi-model-server runs, with a real ONNX model. The property: every
request gets 200 with a prediction or a 4xx with a JSON error; never a 500, never an exception.
FUZZ_EXAMPLES (default 400) requests, derandomized: the same ones on every machine, however fast.
Meanwhile every socket connection is refused and recorded: the handler never fetches anything.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability.corpus import image
from serve import codec

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))


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
    # deep nesting: json.loads recurses (RecursionError past ~1,000 levels in CPython's decoder)
    st.tuples(st.integers(1, 300_000), st.sampled_from([b"[", b"{\"a\":"])).map(lambda nest: nest[1] * nest[0]),
    st.integers(1, 300_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(4_000, 20_000).map(lambda digits: b"{\"instances\": " + b"9" * digits + b"}"),
)
content_types = st.one_of(st.sampled_from([*codec.IMAGE_TYPES, codec.JSON, "", "text/plain", "image/jpeg; q=1",
                                           "IMAGE/PNG", "application/x-npy"]), st.text(max_size=30))
accepts = st.one_of(st.none(), st.sampled_from(["application/json", "application/x-npy", "*/*", "text/csv",
                                                "application/json;q=0.5, application/x-npy", ""]),
                    st.text(max_size=30))
attributes = st.one_of(st.none(), st.integers(-10**30, 10**30).map(lambda k: f"top_k={k}"),
                       st.text(max_size=30).map(lambda v: f"top_k={v}"), st.text(max_size=40),
                       # digits of every script ('²', '٣', '৯'), and more of them than int() parses
                       st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=8).map(
                           lambda v: f"top_k={v}"),
                       st.integers(4_000, 10_000).map(lambda n: "top_k=" + "7" * n))


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
    statuses = collections.Counter()

    @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(body=st.one_of(image_bodies, json_bodies), content_type=content_types, accept=accepts,
           attribute=attributes)
    def property_holds(body, content_type, accept, attribute):
        statuses[check_request(transformer, body, content_type, accept, attribute)] += 1

    property_holds()
    print(f"fuzz: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert {200, 400, 406, 415} <= set(statuses)  # it reached the model and the common refusals
    assert no_network == []


@pytest.mark.parametrize("body, content_type, status", [
    (SEEDS[0], "image/jpeg", 200), (SEEDS[1][:60], "image/png", 400),
    (b"{\"instances\": [{\"b64\": \"\"}]}", "application/json", 400), (SEEDS[0], "text/plain", 415)])
def test_the_fuzz_property_tells_answers_apart(transformer, body, content_type, status):
    assert check_request(transformer, body, content_type, None, None) == status
