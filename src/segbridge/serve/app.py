"""The FastAPI application: routes, auth, limits, queue, idempotency, metrics, logs.

Request flow for a job endpoint: the outer ASGI middleware gives the request an id, counts
bytes, refuses a Content-Length over ``--max-upload`` (413) before reading anything, logs one
JSON line when the answer is out and removes the request's temporary folder whatever happened
(errors, timeouts, a client that hung up mid-upload). The route then checks the bearer token,
takes a work slot (503 + Retry-After when ``--workers + --queue`` are taken), streams the
upload into the folder (413 once the count passes the limit), and runs the job in a worker
process with the request's deadline (504 when it passes).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import sys
import tempfile
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Depends, FastAPI, Header, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from . import jobs
from . import schema as api
from .config import ServeConfig
from .metrics import Metrics
from .upload import UploadError, receive

log = logging.getLogger("segbridge.serve")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
IDEMPOTENCY_ENTRIES = 1000
VERSION = "1"


#: deepest nesting of the JSON `request` part (real ones are about 7 deep); deeper documents
#: would only exhaust the recursion of the JSON reader or of the hand-over to a worker
MAX_JSON_DEPTH = 32


def _depth(value, limit: int = MAX_JSON_DEPTH + 1) -> int:
    """Nesting depth of a JSON value, counted without recursion up to ``limit``."""
    depth, level = 0, [value]
    while level and depth < limit:
        depth += 1
        level = [v for x in level if isinstance(x, (list, dict))
                 for v in (x.values() if isinstance(x, dict) else x)]
    return depth if not level else limit


class ApiError(Exception):
    """An answer ``{"error": kind, "message": message}`` with ``status``."""

    def __init__(self, status: int, kind: str, message: str, *, headers: dict | None = None,
                 extra: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.headers = headers or {}
        self.extra = extra or {}


def error_response(status: int, kind: str, message: str, headers: dict | None = None,
                   extra: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": kind, "message": message, **(extra or {})}, status_code=status,
                        headers=headers)


@dataclass
class Remembered:
    """One Idempotency-Key: the body digest, and the answer once there is a final one."""

    digest: str
    status: int | None = None
    body: bytes = b""
    media_type: str = "application/json"


@dataclass
class State:
    config: ServeConfig
    metrics: Metrics = field(default_factory=Metrics)
    pool: ProcessPoolExecutor | None = None
    inflight: int = 0
    keys: OrderedDict = field(default_factory=OrderedDict)


# ---------------------------------------------------------------------------------------------
# the outer ASGI middleware: id, limits, logs, metrics, clean-up
# ---------------------------------------------------------------------------------------------
class Outer:
    def __init__(self, app, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.monotonic()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = headers.get("x-request-id", "")
        rid = rid if REQUEST_ID.match(rid) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        seen = {"in": 0, "out": 0, "status": 0, "kind": None}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                seen["in"] += len(message.get("body", b""))
            return message

        async def tagged_send(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body":
                seen["out"] += len(message.get("body", b""))
            await send(message)

        try:
            length = headers.get("content-length")
            limit = self.state.config.max_upload
            if length is not None and (not length.isdigit() or int(length) > limit):
                seen["kind"] = "too_large"
                resp = error_response(413, "too_large", f"the request body ({length} bytes) is "
                                      f"over the limit of {limit} bytes (--max-upload)",
                                      {"Connection": "close"})
                await resp(scope, counting_receive, tagged_send)
                return
            await self.app(scope, counting_receive, tagged_send)
        finally:
            st = scope.get("state", {})
            work = st.get("work")
            if work is not None:
                jobs.remove(work)
            route = getattr(scope.get("route"), "path", None) or "other"
            seconds = time.monotonic() - start
            status = seen["status"] or 499  # no answer: the client went away first
            kind = st.get("error_kind") or seen["kind"]
            self.state.metrics.request(route, scope["method"], status, seconds, seen["in"],
                                       seen["out"])
            if kind:
                self.state.metrics.failure(kind)
            line = {"ts": round(time.time(), 3), "request_id": rid, "method": scope["method"],
                    "route": route, "path": scope["path"], "status": status,
                    "ms": round(seconds * 1000, 1), "bytes_in": seen["in"],
                    "bytes_out": seen["out"],
                    "client": (scope.get("client") or ("", 0))[0]}
            if kind:
                line["error"] = kind
            if st.get("idempotent_replay"):
                line["idempotent_replay"] = True
            log.info(json.dumps(line))


# ---------------------------------------------------------------------------------------------
# the application
# ---------------------------------------------------------------------------------------------
def create_app(config: ServeConfig) -> FastAPI:
    state = State(config)
    state.metrics.capacity = config.capacity
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    @asynccontextmanager
    async def lifespan(app):
        import multiprocessing

        state.pool = ProcessPoolExecutor(
            max_workers=config.workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=jobs.init_worker, initargs=(config.web,))
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(state.pool, jobs.warm)
                               for _ in range(config.workers)))
        log.info(json.dumps({"ts": round(time.time(), 3), "event": "ready",
                             "listen": f"{config.host}:{config.port}",
                             "pacs": jobs.public(config.pacs), "workers": config.workers,
                             "queue": config.queue, "auth": bool(config.tokens)}))
        try:
            yield
        finally:
            state.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="segbridge", version=VERSION, lifespan=lifespan,
        description="Turn AI segmentation masks into DICOM SEG stored in a PACS, verified voxel "
                    "for voxel; validate, convert and measure segmentations. Errors are "
                    '`{"error": kind, "message": one line}`. See docs/serve.md.')

    # -- errors ---------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        request.state.error_kind = exc.kind
        return error_response(exc.status, exc.kind, exc.message, exc.headers, exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x not in ("query", "path"))
        request.state.error_kind = "bad_request"
        return error_response(422, "bad_request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        request.state.error_kind = kind
        return error_response(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        request.state.error_kind = "internal"
        rid = request.state.request_id
        log.error(json.dumps({"ts": round(time.time(), 3), "request_id": rid,
                              "internal_error": f"{type(exc).__name__}: {exc}"}))
        return error_response(500, "internal", f"internal error (request id {rid}); the "
                              "server log has the details")

    app.add_middleware(Outer, state=state)

    # -- auth -----------------------------------------------------------------------------
    bearer = HTTPBearer(auto_error=False, description="one of the service's --token-file "
                        "tokens (not needed when it runs without one)")

    async def auth(request: Request, _scheme=Security(bearer)) -> None:
        if not config.tokens:
            return
        authorization = request.headers.get("authorization")
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(401, "unauthorized", "a bearer token is needed (Authorization: "
                           "Bearer <token>)", headers={"WWW-Authenticate": "Bearer"})
        given = authorization[7:].strip().encode("utf-8", "replace")
        ok = False
        for t in config.tokens:  # compare with every token: no early exit to time
            ok |= hmac.compare_digest(given, t.encode())
        if not ok:
            raise ApiError(401, "unauthorized", "the bearer token is not valid",
                           headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def token_scope(authorization: str | None) -> str:
        """The token itself (not the header's spelling: "bearer  x" is "Bearer x")."""
        token = (authorization or "")[7:].strip() if (authorization or "").lower().startswith(
            "bearer ") else ""
        return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:16]

    # -- work slots and jobs --------------------------------------------------------------
    def take_slot(request: Request) -> None:
        if state.inflight >= config.capacity:
            raise ApiError(503, "queue_full", f"all {config.capacity} work slots are taken "
                           f"({config.workers} workers + {config.queue} queued); retry later",
                           headers={"Retry-After": "5"})
        state.inflight += 1
        state.metrics.inflight = state.inflight
        request.state.slot = True

    def release(request: Request) -> None:
        if getattr(request.state, "slot", False):
            request.state.slot = False
            state.inflight -= 1
            state.metrics.inflight = state.inflight

    def workdir(request: Request) -> Path:
        work = Path(tempfile.mkdtemp(prefix="req-", dir=config.tmp_dir))
        request.state.work = str(work)
        return work

    async def run(request: Request, fn, *args, deadline: float) -> dict:
        """Run a job in a worker; the slot is held until the worker is done with it (also
        after a timeout: a worker cannot be stopped half way, its result is dropped)."""
        loop = asyncio.get_running_loop()
        future = state.pool.submit(fn, *args)
        request.state.slot = False  # from here the future owns the slot
        work = getattr(request.state, "work", None)
        abandoned = False

        def done(_):
            def free():
                state.inflight -= 1
                state.metrics.inflight = state.inflight
                if abandoned and work is not None:
                    jobs.remove(work)  # again: the worker may have written after a timeout
            loop.call_soon_threadsafe(free)

        future.add_done_callback(done)
        try:
            answer = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                            max(0.0, deadline - time.time()))
        except asyncio.TimeoutError:
            abandoned = True
            raise ApiError(504, "timeout", f"no answer within {config.timeout:g} s "
                           "(--timeout)") from None
        if not answer["ok"]:
            if answer.get("trace"):
                log.error(json.dumps({"ts": round(time.time(), 3),
                                      "request_id": request.state.request_id,
                                      "internal_error": answer["trace"]}))
            extra = {"findings": answer["findings"]} if answer.get("findings") else None
            raise ApiError(answer["status"], answer["kind"], answer["message"], extra=extra)
        return answer["result"]

    async def upload(request: Request, work: Path, file_fields: tuple[str, ...],
                     deadline: float):
        """The body into ``work``; a client too slow to send it within the request's time
        gets 408 (and gives its work slot back)."""
        try:
            return await asyncio.wait_for(
                receive(request, work, config.max_upload, file_fields=file_fields),
                max(0.0, deadline - time.time()))
        except asyncio.TimeoutError:
            raise ApiError(408, "upload_timeout", "the upload did not arrive within "
                           f"{config.timeout:g} s (--timeout)",
                           headers={"Connection": "close"}) from None
        except UploadError as exc:
            headers = {"Connection": "close"} if exc.status == 413 else None
            raise ApiError(exc.status, exc.kind, exc.message, headers=headers) from None

    def request_json(up, required: bool = True) -> dict:
        text = up.fields.get("request")
        if text is None:
            if required:
                raise ApiError(400, "bad_request", "the JSON part 'request' is missing")
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ApiError(400, "bad_request", f"the request part is not JSON ({exc})") \
                from None
        except RecursionError:
            raise ApiError(400, "bad_request", "the request part is nested too deeply") \
                from None
        if _depth(value) > MAX_JSON_DEPTH:
            raise ApiError(400, "bad_request", f"the request part is nested more than "
                           f"{MAX_JSON_DEPTH} levels deep") from None
        return value

    def params_of(up, need_reference: bool = True) -> dict:
        try:
            return jobs.check_params(request_json(up), config.pacs,
                                     need_reference=need_reference)
        except jobs.SegbridgeError as exc:
            raise ApiError(422, "invalid_input", jobs.one_line(exc)) from None

    def mask_of(up, part: str = "mask"):
        f = up.files.get(part)
        if f is None:
            raise ApiError(400, "bad_request", f"the file part '{part}' is missing")
        if f.size == 0:
            raise ApiError(422, "invalid_input", f"{f.filename}: the file is empty")
        return f

    # -- routes ---------------------------------------------------------------------------
    @app.post("/v1/segmentations", status_code=201, dependencies=[Depends(auth)],
              openapi_extra=api.MASK, summary="Convert a mask to DICOM SEG, store it in the "
              "PACS, read it back and verify it",
              responses=api.answers(201, "stored and verified: SEG series / instance UIDs, "
                                    "findings, voxel counts and volumes", api.Stored, (),
                                    *api.UPLOAD, 409))
    async def segmentations(request: Request, authorization: str | None = Header(
            None, include_in_schema=False), idempotency_key: str | None = Header(
            None, description="Retries with the same key and body get the first answer; "
                              "nothing is stored twice")):
        deadline = time.time() + config.timeout
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            raise ApiError(400, "bad_request", "Idempotency-Key must be 1..255 visible ASCII "
                           "characters")
        take_slot(request)
        try:
            work = workdir(request)
            up = await upload(request, work, ("mask",), deadline)
            key = (token_scope(authorization), idempotency_key) if idempotency_key else None
            if key is not None:
                seen = state.keys.get(key)
                if seen is not None:
                    if seen.digest != up.digest:
                        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key "
                                       "was used with another request body")
                    if seen.status is None:
                        raise ApiError(409, "in_progress", "a request with this "
                                       "Idempotency-Key is still running; retry later",
                                       headers={"Retry-After": "2"})
                    request.state.idempotent_replay = True
                    if seen.status >= 400:
                        request.state.error_kind = json.loads(seen.body).get("error")
                    return Response(seen.body, status_code=seen.status,
                                    media_type=seen.media_type,
                                    headers={"Idempotent-Replayed": "true"})
                state.keys[key] = Remembered(up.digest)
                while len(state.keys) > IDEMPOTENCY_ENTRIES:
                    state.keys.popitem(last=False)
            try:
                params = params_of(up)
                mask = mask_of(up)
                result = await run(request, jobs.publish_job, str(work), str(mask.path),
                                   mask.filename, params, config.pacs, deadline,
                                   deadline=deadline)
            except ApiError as exc:
                state.metrics.conversion("segmentations", exc.kind)
                if key is not None:
                    if exc.status < 500:  # a final answer; 5xx may succeed when retried
                        body = json.dumps({"error": exc.kind, "message": exc.message,
                                           **exc.extra}).encode()
                        state.keys[key].status, state.keys[key].body = exc.status, body
                    else:
                        state.keys.pop(key, None)
                raise
            except BaseException:  # anything else (a bug, a cancel): the key is free again
                if key is not None:
                    state.keys.pop(key, None)
                raise
            state.metrics.conversion("segmentations", "ok")
            body = json.dumps(result).encode()
            if key is not None:
                state.keys[key].status, state.keys[key].body = 201, body
            return Response(body, status_code=201, media_type="application/json")
        except ClientDisconnect:
            request.state.error_kind = "client_disconnect"
            return Response(status_code=499)
        finally:
            release(request)

    @app.post("/v1/convert", dependencies=[Depends(auth)], openapi_extra=api.MASK,
              summary="The same conversion without storing: the SEG (application/dicom) or a "
                      "zip of the split series", response_class=Response,
              responses=api.answers(200, "the SEG, or a zip of the SEG series when "
                                    "overlapping segments were split",
                                    None, ("application/dicom", "application/zip"),
                                    *api.UPLOAD))
    async def convert(request: Request):
        deadline = time.time() + config.timeout
        take_slot(request)
        try:
            work = workdir(request)
            up = await upload(request, work, ("mask",), deadline)
            params = params_of(up)
            mask = mask_of(up)
            try:
                result = await run(request, jobs.convert_job, str(work), str(mask.path),
                                   mask.filename, params, deadline=deadline)
            except ApiError as exc:
                state.metrics.conversion("convert", exc.kind)
                raise
            state.metrics.conversion("convert", "ok")
            name = "segmentation.dcm" if result["media_type"] == "application/dicom" else \
                "segmentation.zip"
            return FileResponse(result["path"], media_type=result["media_type"],
                                filename=name,
                                headers={"X-Segbridge-Files": ",".join(result["files"])})
        except ClientDisconnect:
            request.state.error_kind = "client_disconnect"
            return Response(status_code=499)
        finally:
            release(request)

    @app.post("/v1/validate", dependencies=[Depends(auth)], summary="Validate a SEG or "
              "RTSTRUCT (the rules of `segbridge validate`)", openapi_extra=api.VALIDATE,
              responses=api.answers(200, "the findings (ok is false when a rule of severity "
                                    "error is broken)", api.Validation, (), *api.UPLOAD))
    async def validate(request: Request):
        deadline = time.time() + config.timeout
        take_slot(request)
        try:
            work = workdir(request)
            up = await upload(request, work, ("file",), deadline)
            doc = request_json(up, required=False)
            profile = doc.pop("profile", "standard") if isinstance(doc, dict) else "standard"
            if profile not in jobs.VALIDATION_PROFILES:
                raise ApiError(422, "invalid_input", "profile must be one of "
                               f"{', '.join(jobs.VALIDATION_PROFILES)}")
            try:
                params = jobs.check_params(doc, config.pacs, need_reference=False)
            except jobs.SegbridgeError as exc:
                raise ApiError(422, "invalid_input", jobs.one_line(exc)) from None
            f = mask_of(up, "file")
            return await run(request, jobs.validate_job, str(work), str(f.path), f.filename,
                             params["reference"], profile, deadline=deadline)
        except ClientDisconnect:
            request.state.error_kind = "client_disconnect"
            return Response(status_code=499)
        finally:
            release(request)

    async def stored(request: Request, study: str, series: str, what: str, query: dict):
        """stats / measure / preview: the job's JSON as the CLI prints it (json.dumps)."""
        deadline = time.time() + config.timeout
        take_slot(request)
        try:
            work = workdir(request)
            try:
                jobs.check_params({"reference": {"study": study, "series": series}},
                                  config.pacs)
            except jobs.SegbridgeError as exc:
                raise ApiError(422, "invalid_input", jobs.one_line(exc)) from None
            return await run(request, jobs.stored_job, str(work), config.pacs, study, series,
                             what, query, deadline=deadline)
        finally:
            release(request)

    segments_q = Query(None, description="Segment numbers, e.g. 1,3 or 2-5 (default: all)")

    @app.get("/v1/studies/{study}/series/{series}/stats", dependencies=[Depends(auth)],
             summary="Per-segment statistics of a stored SEG / RTSTRUCT on its image "
                     "(`segbridge stats --format json`)",
             responses=api.answers(200, "statistics per segment", api.Stats, (),
                                   *api.STORED))
    async def stats(request: Request, study: str, series: str, segments: str | None = segments_q,
                    mode: str = Query("individual", pattern="^(individual|collective)$")):
        return Response(json.dumps(await stored(request, study, series, "stats",
                                                {"segments": segments, "mode": mode})),
                        media_type="application/json")

    @app.get("/v1/studies/{study}/series/{series}/measure", dependencies=[Depends(auth)],
             summary="Largest bidirectional per segment (`segbridge measure --json`)",
             responses=api.answers(200, "long and short axis per segment", api.Measure, (),
                                   *api.STORED))
    async def measure(request: Request, study: str, series: str,
                      segments: str | None = segments_q):
        return Response(json.dumps(await stored(request, study, series, "measure",
                                                {"segments": segments})),
                        media_type="application/json")

    @app.get("/v1/studies/{study}/series/{series}/preview.png", dependencies=[Depends(auth)],
             summary="PNG preview (`segbridge render`): axial, coronal and sagittal views",
             responses=api.answers(200, "axial, coronal and sagittal views", None,
                                   ("image/png",), *api.STORED), response_class=Response)
    async def preview(request: Request, study: str, series: str,
                      segments: str | None = segments_q,
                      plane: str = Query("all", pattern="^(all|axial|coronal|sagittal)$",
                                         description="all three views side by side, or one"),
                      slice: int | None = Query(None, ge=0, description="slice index along "
                                                "the plane (axial for all; default: the focus "
                                                "segment's measured slice)"),
                      focus: int | None = Query(None, description="segment the views go "
                                                "through (default: the largest)")):
        result = await stored(request, study, series, "preview",
                              {"segments": segments, "slice": slice, "focus": focus,
                               "plane": plane})
        return FileResponse(result["path"], media_type="image/png")

    @app.get("/health", summary="The process is up",
             responses=api.answers(200, "the process runs", api.Health))
    async def health():
        return {"status": "ok"}

    @app.get("/ready", summary="The PACS answers a QIDO-RS query",
             responses=api.answers(200, "the PACS answers", api.Ready, (), 503))
    async def ready(request: Request):
        options = jobs.WebOptions(**{**config.web.as_dict(), "timeout": 5.0, "retries": 0})
        try:
            await asyncio.to_thread(jobs.ping, config.pacs, options)
        except jobs.SegbridgeError as exc:
            status, kind = jobs.classify(exc)
            raise ApiError(503, kind if status != 404 else "pacs_error",
                           jobs.one_line(exc)) from None
        return {"status": "ready", "pacs": jobs.public(config.pacs)}

    @app.get("/metrics", dependencies=[Depends(auth)], response_class=Response,
             summary="Prometheus metrics (text format 0.0.4)",
             responses={200: {"description": "the metrics", "content": {"text/plain": {
                 "schema": {"type": "string"}}}}, **api.errors(401)})
    async def metrics():
        return PlainTextResponse(state.metrics.render(),
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    return app
