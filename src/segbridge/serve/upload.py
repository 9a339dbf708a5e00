"""Streaming multipart/form-data into a per-request folder, counted and hashed as it comes.

Starlette's own form parser spools files to the system temporary folder and counts nothing;
this one writes each file part to ``folder`` under a name of our choosing (the client's file
name only lends its suffix), stops at ``limit`` bytes (413), keeps text fields in memory (at
most ``FIELD_LIMIT`` each) and computes a digest of the content (names, file names and bytes
of every part, in any order: a retry with a new multipart boundary has the same digest).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

FIELD_LIMIT = 1 << 20
#: suffixes a stored upload keeps (format detection reads the content first anyway)
SUFFIXES = (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".dcm", ".npy", ".json", ".zip")


class UploadError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


@dataclass
class UploadedFile:
    path: Path
    filename: str  # as the client named it (for messages only)
    size: int = 0


@dataclass
class Upload:
    files: dict[str, UploadedFile] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    size: int = 0


def safe_suffix(filename: str) -> str:
    low = filename.lower()
    return next((s for s in SUFFIXES if low.endswith(s)), "")


def clean_name(filename: str) -> str:
    """The client's file name for messages: its last component, printable, at most 100."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable())[:100]
    return name or "upload"


async def receive(request, folder: Path, limit: int, *, file_fields: tuple[str, ...]) -> Upload:
    """Parse the body of ``request`` (multipart/form-data) into ``folder``."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(415, "unsupported_media_type", "the body must be multipart/form-data "
                          f"with the parts {', '.join(file_fields)} and request (JSON)")
    up = Upload()
    digests: list[tuple[str, str, str]] = []
    cur: dict = {}
    header = {"field": b"", "value": b""}

    def on_part_begin() -> None:
        cur.clear()
        cur.update(headers={}, hash=hashlib.sha256(), size=0, fp=None, buf=bytearray())

    def on_header_field(data, start, end) -> None:
        header["field"] += data[start:end]

    def on_header_value(data, start, end) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        cur["headers"][header["field"].decode("latin-1").lower()] = header["value"]
        header["field"], header["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(cur["headers"].get("content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        if not name:
            raise UploadError(400, "bad_request", "a multipart part has no name")
        if name in up.files or name in up.fields:
            raise UploadError(400, "bad_request", f"the part {name!r} is given twice")
        filename = disp.get(b"filename")
        cur["name"] = name
        if name in file_fields:
            fname = filename.decode("utf-8", "replace") if filename is not None else name
            path = folder / f"{name}{safe_suffix(fname)}"
            up.files[name] = UploadedFile(path, clean_name(fname))
            cur["fp"] = open(path, "wb")
            cur["filename"] = fname
        else:
            cur["filename"] = ""

    def on_part_data(data, start, end) -> None:
        chunk = data[start:end]
        cur["hash"].update(chunk)
        cur["size"] += len(chunk)
        if cur["fp"] is not None:
            cur["fp"].write(chunk)
        else:
            if cur["size"] > FIELD_LIMIT:
                raise UploadError(413, "too_large", f"the field {cur['name']!r} is over "
                                  f"{FIELD_LIMIT} bytes")
            cur["buf"] += chunk

    def on_part_end() -> None:
        name = cur["name"]
        if cur["fp"] is not None:
            cur["fp"].close()
            cur["fp"] = None
            up.files[name].size = cur["size"]
        else:
            try:
                up.fields[name] = bytes(cur["buf"]).decode("utf-8")
            except UnicodeDecodeError:
                raise UploadError(400, "bad_request", f"the field {name!r} is not UTF-8") \
                    from None
        digests.append((name, cur["filename"], cur["hash"].hexdigest()))

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data,
        "on_part_end": on_part_end, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished})
    try:
        async for chunk in request.stream():
            up.size += len(chunk)
            if up.size > limit:
                raise UploadError(413, "too_large", f"the request body is over the limit of "
                                  f"{limit} bytes (--max-upload)")
            try:
                parser.write(chunk)
            except UploadError:
                raise
            except Exception as exc:  # python-multipart's MultipartParseError and kin
                raise UploadError(400, "bad_request", f"the multipart body cannot be parsed "
                                  f"({type(exc).__name__})") from None
        parser.finalize()
    finally:
        if cur.get("fp") is not None:
            cur["fp"].close()
    whole = hashlib.sha256()
    for item in sorted(digests):
        whole.update(("\0".join(item) + "\n").encode())
    up.digest = whole.hexdigest()
    return up
