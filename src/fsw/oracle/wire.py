"""The wire format of the label-only API, shared by its server and its client.

`POST /v1/predict` takes JSON in one of two encodings and answers `{"labels": [...]}`:
- `{"encoding": "base64", "dtype": "float32" | "uint8", "shape": [N, 1, 28, 28], "data": "..."}`:
  the tensor's bytes in C order, little-endian, base64-encoded. float32 values must be in [0, 1];
  uint8 values are pixel intensities 0..255, divided by 255. float32 is exact: the same bytes give
  the same labels as the model file queried locally.
- `{"encoding": "list", "images": [...]}`: nested lists of numbers in [0, 1], shape [N, 1, 28, 28].
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from fsw.networks import INPUT_SHAPE, NUM_CLASSES

DEFAULT_MAX_BATCH = 1000
# A full batch of float32 images in base64 is 1000 * 784 * 4 * 4/3 bytes, about 4.2 MB.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DTYPES = {"float32": np.dtype("<f4"), "uint8": np.dtype("u1")}


class Base64Images(BaseModel):
    """A batch as one base64-encoded tensor."""

    model_config = ConfigDict(extra="forbid")
    encoding: Literal["base64"]
    dtype: Literal["float32", "uint8"] = Field(description="float32 in [0, 1] or uint8 in 0..255")
    shape: list[int] = Field(description="[N, 1, 28, 28]", examples=[[2, 1, 28, 28]])
    data: str = Field(description="the tensor's bytes, C order, little-endian, base64")


class ListImages(BaseModel):
    """A batch as nested lists of numbers in [0, 1]."""

    model_config = ConfigDict(extra="forbid")
    encoding: Literal["list"]
    # Checked as one array by numpy, not element-wise by pydantic: a bad batch of 784 numbers per
    # image would otherwise produce one error message per number.
    images: list[Any] = Field(description="nested lists of shape [N, 1, 28, 28], values in [0, 1]")


PredictRequest = Annotated[Base64Images | ListImages, Field(discriminator="encoding")]


class PredictResponse(BaseModel):
    labels: list[Annotated[int, Field(ge=0, lt=NUM_CLASSES)]] = Field(
        description="the top-1 label of each image, in request order"
    )


class HealthResponse(BaseModel):
    status: Literal["ok"]
    input_shape: list[int]
    max_batch: int
    max_body_bytes: int


class ErrorResponse(BaseModel):
    detail: str


class InvalidImages(ValueError):
    """A well-formed request whose images cannot be classified; the message says why."""


def describe_errors(errors: list[dict], shown: int = 3) -> str:
    """Pydantic's validation errors as one short line, without echoing the (possibly huge) input."""
    parts = [
        ".".join(map(str, error["loc"])) + ": " + error["msg"] if error["loc"] else error["msg"]
        for error in errors[:shown]
    ]
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return "; ".join(parts) + more


def decode_images(request: Base64Images | ListImages, max_batch: int) -> torch.Tensor:
    """The request's images as float32 [N, 1, 28, 28] in [0, 1], or InvalidImages."""
    if isinstance(request, Base64Images):
        shape = tuple(request.shape)
        _check_shape(shape, max_batch)
        try:
            raw = base64.b64decode(request.data, validate=True)
        except binascii.Error as exc:
            raise InvalidImages(f"data is not valid base64: {exc}") from exc
        dtype = DTYPES[request.dtype]
        expected = math.prod(shape) * dtype.itemsize
        if len(raw) != expected:
            raise InvalidImages(
                f"data holds {len(raw)} bytes, but shape {list(shape)} of {request.dtype} "
                f"needs {expected}"
            )
        array = np.frombuffer(raw, dtype=dtype).reshape(shape)
        if request.dtype == "uint8":
            return torch.from_numpy(array.astype(np.float32) / 255.0)
    else:
        try:
            array = np.asarray(request.images)
        except ValueError as exc:  # ragged nesting
            raise InvalidImages(f"images is not a rectangular array of numbers: {exc}") from exc
        if array.dtype.kind not in "iuf":
            raise InvalidImages(
                f"images must hold numbers only, got elements of type {array.dtype}"
            )
        _check_shape(array.shape, max_batch)
        array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise InvalidImages("images hold NaN or infinite values; values must be in [0, 1]")
    low, high = float(array.min()), float(array.max())
    if low < 0.0 or high > 1.0:
        raise InvalidImages(f"image values must be in [0, 1], got values in [{low:g}, {high:g}]")
    return torch.from_numpy(array.copy())  # frombuffer arrays are read-only


def _check_shape(shape: tuple[int, ...], max_batch: int) -> None:
    if len(shape) != 1 + len(INPUT_SHAPE) or tuple(shape[1:]) != INPUT_SHAPE:
        raise InvalidImages(
            f"images must have shape [N, {', '.join(map(str, INPUT_SHAPE))}], got {list(shape)}"
        )
    if not 1 <= shape[0] <= max_batch:
        raise InvalidImages(f"a batch holds 1 to {max_batch} images, got {shape[0]}")


def encode_images(x: torch.Tensor) -> dict:
    """The request body of `POST /v1/predict` for images `x`: exact float32 bytes in base64."""
    array = x.detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4", copy=False)
    return {
        "encoding": "base64",
        "dtype": "float32",
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }
