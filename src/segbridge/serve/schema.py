"""What the OpenAPI schema (``/openapi.json``) says about bodies and answers.

The routes answer with ``Response`` objects they build themselves (the jobs' JSON as the CLI
prints it), so these models are never used to serialize: they document the answers, and
tests/test_serve_schema.py holds every answer of a property-based run against them. Every
operation declares each status it can answer with, its model and its content type: the
``{"error", "message"}`` body of every error, ``application/dicom`` / ``application/zip`` of
``/v1/convert``, ``image/png`` of the preview, ``text/plain`` of ``/metrics``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from .jobs import COMPRESSIONS, PROFILES, TYPES, VALIDATION_PROFILES


class Finding(BaseModel):
    """One rule a SEG / RTSTRUCT breaks (``segbridge validate``)."""

    rule: str
    severity: str = Field(description="error, warning or info")
    where: str
    message: str
    hint: str
    source: str


class ErrorBody(BaseModel):
    """Every error: its kind and the one line the CLI would print."""

    error: str = Field(description="the kind of error (docs/serve.md: Errors)")
    message: str
    findings: list[Finding] | None = Field(
        None, description="what failed validation (kind validation_failed)")


class StoredSeries(BaseModel):
    series_instance_uid: str
    sop_instance_uids: list[str]
    segments: list[int] = Field(description="segment numbers held by this series")


class SegmentSummary(BaseModel):
    number: int
    label: str
    voxels: int
    volume_ml: float | None
    series_instance_uid: str | None = None


class Stored(BaseModel):
    """The answer of ``POST /v1/segmentations``: what the PACS holds, read back and equal."""

    study_instance_uid: str
    reference_series_uid: str
    series: list[StoredSeries]
    segments: list[SegmentSummary]
    findings: list[Finding]
    verified: bool
    notes: list[str]
    warnings: list[str]


class Validation(BaseModel):
    """``segbridge validate --json`` of the uploaded file."""

    path: str
    kind: str = Field(description="SEG or RTSTRUCT")
    profile: str
    ok: bool
    errors: int
    warnings: int
    findings: list[Finding]
    skipped: list[str]


class SegmentStats(BaseModel):
    """One segment (or the union of several, mode collective) on its image; statistics of an
    empty segment are null."""

    segment: int | list[int]
    label: str | None
    empty: bool
    voxel_count: int
    volume_mm3: float | None
    volume_ml: float | None
    unit: str | None
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    median: float | None


class Stats(BaseModel):
    """``segbridge stats --format json`` of a stored SEG / RTSTRUCT."""

    study: str
    series: str
    image: str = Field(description="URL of the image series the object references")
    mode: str
    segments: list[SegmentStats]
    notes: list[str]
    warnings: list[str]


class Axes(BaseModel):
    """The largest bidirectional measurement of one segment (null where it has none)."""

    segment: int
    label: str | None
    long_axis_mm: float | None
    short_axis_mm: float | None
    long_axis_lps: Any
    short_axis_lps: Any
    slice_index: int | None
    sop_instance_uid: str | None
    frame_number: int | None
    note: str | None


class Measure(BaseModel):
    """``segbridge measure --json`` of a stored SEG / RTSTRUCT."""

    study: str
    series: str
    image: str
    segments: list[Axes]
    notes: list[str]
    warnings: list[str]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    pacs: str = Field(description="the PACS's DICOMweb root (without credentials)")


# ---------------------------------------------------------------------------------------------
# errors an operation can answer with
# ---------------------------------------------------------------------------------------------
ERRORS = {
    400: "bad_request: not multipart, a part missing or given twice, request not JSON, a bad "
         "Idempotency-Key",
    401: "unauthorized: no bearer token, or not one of --token-file",
    404: "not_found: the reference series (or the series asked for) is not on the PACS",
    408: "upload_timeout: the body did not arrive within --timeout",
    409: "in_progress: a request with the same Idempotency-Key is still running (Retry-After)",
    413: "too_large: body over --max-upload (or a field over 1 MiB); out_of_memory",
    415: "unsupported_media_type: the body is not multipart/form-data, or the file is none of "
         "the formats read",
    422: "invalid_input, geometry_mismatch, validation_failed, unsupported, "
         "idempotency_key_reused, bad_request (a query or path parameter)",
    502: "store_refused, read_back, pacs_error, pacs_auth: the PACS refused, answered "
         "something else, or refused the service's credentials",
    503: "pacs_unreachable: the PACS does not answer; queue_full: all work slots taken "
         "(Retry-After)",
    504: "pacs_timeout, timeout: the PACS or the whole request took too long",
}
#: the statuses of each kind of operation
UPLOAD = (400, 401, 404, 408, 413, 415, 422, 502, 503, 504)
STORED = (401, 404, 413, 422, 502, 503, 504)


def errors(*statuses: int) -> dict:
    """``responses=`` entries: each status with the error model as application/json."""
    return {s: {"model": ErrorBody, "description": ERRORS[s]} for s in statuses}


def answers(status: int, description: str, model=None, media: tuple[str, ...] = (),
            *error_statuses: int) -> dict:
    """The success answer (a model as JSON, or the media types it comes in) and the errors."""
    ok: dict = {"description": description}
    if model is not None:
        ok["model"] = model
    if media:
        ok["content"] = {m: {"schema": {"type": "string", "format": "binary"}} for m in media}
    return {status: ok, **errors(*error_statuses)}


# ---------------------------------------------------------------------------------------------
# multipart bodies
# ---------------------------------------------------------------------------------------------
UID = {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)*$", "maxLength": 64,
       "description": "a DICOM UID"}
REFERENCE = {"oneOf": [
    {"type": "object", "required": ["study", "series"], "additionalProperties": False,
     "properties": {"study": UID, "series": UID}},
    {"type": "string", "description": "the series URL <pacs>/studies/<uid>/series/<uid> on "
                                      "this service's PACS"}]}
COLOR = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255},
         "minItems": 3, "maxItems": 3}
SEGMENT = {"type": "object", "required": ["label", "value"], "properties": {
    "label": {"type": "string"}, "value": {"type": "integer", "minimum": 1},
    "color": COLOR, "description": {"type": "string"}, "algorithm": {"type": "string"}}}
SEGMENTS = {"oneOf": [
    {"type": "array", "items": SEGMENT, "description": "value: the label value in a [z, y, x] "
     "array, or the position 1..n of a mask in an [n, z, y, x] stack"},
    {"type": "object", "required": ["segmentAttributes"], "description": "dcmqi metadata (as "
     "segbridge convert --meta)", "properties": {"segmentAttributes": {
         "type": "array", "items": {"type": "array", "items": {"type": "object"}}}}}]}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


REQUEST = {
    "type": "object", "additionalProperties": False, "required": ["reference"],
    "description": "The JSON part: what to convert and how (docs/serve.md)",
    "properties": {
        "reference": REFERENCE,
        "segments": _nullable(SEGMENTS),
        "profile": _nullable({"type": "string", "enum": list(PROFILES)}),
        "type": _nullable({"type": "string", "enum": list(TYPES)}),
        "compression": _nullable({"type": "string", "enum": list(COMPRESSIONS)}),
        "series_description": _nullable({"type": "string", "maxLength": 64}),
        "fractional": {"type": "boolean"},
    }}
VALIDATE_REQUEST = {
    "type": "object", "additionalProperties": False,
    "description": "The optional JSON part: a reference to check the file against, a profile",
    "properties": {"reference": _nullable(REFERENCE),
                   "profile": {"type": "string", "enum": list(VALIDATION_PROFILES)}}}
FILE = {"type": "string", "format": "binary"}


def multipart(file_part: str, file_description: str, request: dict, required: bool) -> dict:
    """``openapi_extra`` of an upload: the file part and the JSON part ``request``."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object",
                   "required": [file_part, "request"] if required else [file_part],
                   "properties": {file_part: {**FILE, "description": file_description},
                                  "request": request}},
        "encoding": {file_part: {"contentType": "application/octet-stream"},
                     "request": {"contentType": "application/json"}}}}}}


MASK = multipart("mask", "NIfTI, NRRD, seg.nrrd, DICOM SEG, RTSTRUCT, or NumPy .npy ([z, y, x] "
                 "labels or [n, z, y, x] masks in the reference's voxel order)", REQUEST, True)
VALIDATE = multipart("file", "a DICOM SEG or RTSTRUCT", VALIDATE_REQUEST, False)
