"""Requests in, responses out: content types, accept types, custom attributes, and the 4xx they earn.

Every problem with a request raises RequestError with the HTTP status and a message that
says what was wrong and what is accepted; the handler turns it into a JSON body.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json

import numpy as np
from PIL import Image, UnidentifiedImageError

from imaging import FORMATS, ImageTooLarge, open_image, to_rgb

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff",
               "application/x-image")
JSON = "application/json"
NPY = "application/x-npy"
# What the SageMaker SDK's default Predictor serializer sends: served when the bytes say it is an image.
OCTET_STREAM = "application/octet-stream"
# The first bytes of each format decoded here (RIFF....WEBP is checked apart; II+ and MM.+ are BigTIFF).
_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
               (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"))
# Each image type decodes its own format only; application/x-image, octet-stream and JSON any of FORMATS.
TYPE_BY_FORMAT = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
                  "BMP": "image/bmp", "TIFF": "image/tiff"}
FORMATS_BY_TYPE = {kind: (name,) for name, kind in TYPE_BY_FORMAT.items()}
_ACCEPTED = (f"send one of {', '.join(IMAGE_TYPES)}, {OCTET_STREAM} (an image's bytes) "
             f"or {JSON} with {{\"instances\": [{{\"b64\": \"...\"}}]}}")
ACCEPT_TYPES = (JSON, NPY)
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"


class RequestError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: str | None) -> str:
    """'Image/JPEG; charset=x' -> 'image/jpeg'."""
    return (header or "").split(";", 1)[0].strip().lower()


def choose_accept(header: str | None, default: str) -> str:
    """The first supported type in Accept (which may list several, with q-values), else 406."""
    if not header or not header.strip():
        return default
    offered = [media_type(part) for part in header.split(",")]
    for kind in offered:
        if kind in ("*/*", "application/*"):
            return default
        if kind in ACCEPT_TYPES:
            return kind
    raise RequestError(406, f"cannot answer with {header!r}; supported Accept types: {', '.join(ACCEPT_TYPES)}")


def parse_top_k(header: str | None, num_classes: int, default: int) -> int:
    """top_k from SageMaker custom attributes, e.g. 'top_k=3' (other attributes are ignored)."""
    if not header:
        return min(default, num_classes)
    for attribute in header.replace(";", ",").split(","):
        key, _, value = attribute.partition("=")
        if key.strip().lower() != "top_k":
            continue
        value = value.strip()
        # ASCII digits only: str.isdigit() also takes '²', which int() refuses
        if not (value.isascii() and value.isdigit()) or not value.strip("0"):
            raise RequestError(400, f"custom attribute top_k must be a whole number >= 1, got {value[:40]!r}")
        # more digits than any class count: all classes (int() refuses more than 4,300 digits)
        return num_classes if len(value.lstrip("0")) > 9 else min(int(value), num_classes)
    return min(default, num_classes)


@dataclasses.dataclass(frozen=True)
class ImageLimits:
    """What one request may cost in decoding (serve/config.py reads them from the environment)."""

    max_payload_bytes: int
    max_pixels: int  # per image, from its header
    max_request_pixels: int  # all images of a request together, as they will be decoded
    max_aspect_ratio: float  # longer side / shorter side
    max_instances: int

    @classmethod
    def of(cls, config) -> ImageLimits:
        """From a serve.config.ServingConfig."""
        return cls(max_payload_bytes=config.max_payload_bytes, max_pixels=config.max_image_pixels,
                   max_request_pixels=config.max_request_pixels, max_aspect_ratio=config.max_aspect_ratio,
                   max_instances=config.max_instances)


LIMIT_SETTINGS = {"pixels": "MAX_IMAGE_PIXELS", "aspect": "MAX_IMAGE_ASPECT_RATIO"}


def open_images(body: bytes, content_type: str, limits: ImageLimits,
                min_side: int | None) -> tuple[list[Image.Image], bool]:
    """(the request's images, opened but not decoded; whether the request was a batch).

    Every header is read and every cap checked before a single pixel is decoded, so a request over its
    budget costs almost nothing; the caller decodes and releases the images one at a time (load)."""
    if content_type not in (*IMAGE_TYPES, JSON, OCTET_STREAM):
        shown = content_type or "no Content-Type"
        raise RequestError(415, f"unsupported content type {shown!r}; {_ACCEPTED}")
    if len(body) > limits.max_payload_bytes:
        raise RequestError(413, f"request body is {len(body):,} bytes, more than the {limits.max_payload_bytes:,} "
                                "allowed")
    if not body:
        raise RequestError(400, "request body is empty; send an image, or JSON {\"instances\": [{\"b64\": ...}]}")
    batch = content_type == JSON
    payloads = _instances(body, limits.max_instances) if batch else [body]
    formats = FORMATS_BY_TYPE.get(content_type, FORMATS)
    images: list[Image.Image] = []
    try:
        for index, data in enumerate(payloads):
            images.append(open_image_bytes(data, content_type, formats, limits, min_side, index if batch else None))
        decoded = sum(image.width * image.height for image in images)
        if decoded > limits.max_request_pixels:
            raise RequestError(413, f"the request's images are {decoded:,} pixels together, more than the "
                                    f"{limits.max_request_pixels:,} allowed (MAX_REQUEST_PIXELS); send fewer "
                                    "or smaller images per request")
    except BaseException:
        for image in images:
            image.close()
        raise
    return images, batch


def open_image_bytes(data: bytes, content_type: str, formats: tuple[str, ...], limits: ImageLimits,
                     min_side: int | None, index: int | None = None) -> Image.Image:
    where = "image" if index is None else f"instances[{index}]"
    if not data:
        raise RequestError(400, f"{where} is empty")
    sniffed = sniff_image_format(data)
    if sniffed is not None and sniffed not in formats:  # e.g. a PNG sent as image/jpeg
        raise RequestError(415, f"{where} is a {sniffed} image but Content-Type is {content_type}; send it as "
                                f"{TYPE_BY_FORMAT[sniffed]} or application/x-image")
    if sniffed is None and content_type == OCTET_STREAM:
        raise RequestError(415, f"{OCTET_STREAM} body does not start like a JPEG, PNG, WebP, GIF, BMP or TIFF "
                                f"image; {_ACCEPTED}")
    try:
        return open_image(io.BytesIO(data), min_side=min_side, max_pixels=limits.max_pixels, formats=formats,
                          max_aspect_ratio=limits.max_aspect_ratio)
    except ImageTooLarge as error:
        raise RequestError(413, f"{where}: {error} ({LIMIT_SETTINGS[error.limit]})") from None
    except Image.DecompressionBombError as error:
        raise RequestError(413, f"{where}: {error} (MAX_IMAGE_PIXELS)") from None
    except UnidentifiedImageError:
        raise RequestError(400, f"{where} is not a decodable image ({', '.join(formats)})") from None
    except Exception as error:  # noqa: BLE001 - whatever a decoder raises on a caller's bytes is the caller's 400
        raise RequestError(400, f"{where} could not be decoded: {_one_line(error)}") from None


def load(image: Image.Image, index: int | None = None) -> Image.Image:
    """Decode an opened image into RGB and close the original (a RequestError if its data is corrupt)."""
    where = "image" if index is None else f"instances[{index}]"
    try:
        with image:
            image.load()
            return to_rgb(image)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - truncated or corrupt data, modes no converter knows
        raise RequestError(400, f"{where} could not be decoded: {_one_line(error)}") from None


def decode_image(data: bytes, limits: ImageLimits, min_side: int | None, content_type: str = "application/x-image",
                 index: int | None = None) -> Image.Image:
    """One image's bytes to RGB, as a request decodes it."""
    return load(open_image_bytes(data, content_type, FORMATS_BY_TYPE.get(content_type, FORMATS), limits, min_side,
                                 index), index)


def sniff_image_format(data: bytes) -> str | None:
    """The image format the first bytes announce (the header is a claim; the decoder still checks the rest)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for signature, name in _SIGNATURES if data.startswith(signature)), None)


def _instances(body: bytes, max_instances: int) -> list[bytes]:
    try:
        document = json.loads(body)
    except RecursionError:
        raise RequestError(400, "body is JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: also a number of more than 4,300 digits
        raise RequestError(400, f"body is not valid JSON: {_one_line(error)[:200]}") from None
    instances = document.get("instances") if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, "JSON body must be {\"instances\": [{\"b64\": \"<base64 image>\"}, ...]} "
                                "with at least one instance")
    if len(instances) > max_instances:
        raise RequestError(413, f"{len(instances)} instances in one request, more than the {max_instances} allowed "
                                "(MAX_BATCH_INSTANCES)")
    decoded = []
    for index, instance in enumerate(instances):
        data = instance.get("b64") if isinstance(instance, dict) else None
        if not isinstance(data, str):
            raise RequestError(400, f"instances[{index}] must be an object with a \"b64\" string")
        try:
            decoded.append(base64.b64decode(data, validate=True))
        except (binascii.Error, ValueError):
            raise RequestError(400, f"instances[{index}].b64 is not valid base64") from None
    return decoded


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def encode(probabilities: np.ndarray, classes: list[str], accept: str, top_k: int, batch: bool) -> bytes:
    if accept == NPY:
        buffer = io.BytesIO()
        np.save(buffer, probabilities.astype(np.float32), allow_pickle=False)
        return buffer.getvalue()
    answers = [_answer(row, classes, top_k) for row in probabilities]
    return json.dumps(answers if batch else answers[0]).encode()


def _answer(row: np.ndarray, classes: list[str], top_k: int) -> dict:
    order = np.argsort(-row, kind="stable")[:top_k]
    top = [{"label": classes[i], "index": int(i), "probability": float(row[i])} for i in order]
    return {"label": top[0]["label"], "index": top[0]["index"], "probability": top[0]["probability"], "top_k": top}


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
