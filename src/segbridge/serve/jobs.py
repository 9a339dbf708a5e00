"""What the service's requests compute, run in worker processes.

Each job is a top-level function taking plain values (paths as text, JSON-like dicts) and
returning a JSON-ready dict: ``{"ok": True, "result": ...}`` or ``{"ok": False, "status",
"kind", "message"}``. Exceptions are classified here, where their classes are known, so
nothing but plain values crosses the process boundary. Messages are the one line the CLI
prints, with the request's temporary folder replaced by the client's file names.

Every job calls the library function the CLI command calls: ``web.publish`` (convert and
store), ``validate.validate``, ``measure.job.load`` + ``measure.stats.compute_stats`` /
``measure.bidirectional.measure_all`` / ``measure.render.render``.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import OrderedDict
from pathlib import Path

from ..errors import (
    GeometryMismatchError,
    InvalidInputError,
    RemoteError,
    Report,
    SegbridgeError,
    UnsupportedError,
    ValidationFailed,
)
from ..web.client import WebOptions, public, split_series_url

PROFILES = ("ohif", "slicer", "archive", "dense")
TYPES = ("auto", "binary", "fractional", "labelmap")
COMPRESSIONS = ("none", "rle", "jpegls", "jpeg2000", "deflate", "deflate-frame")
VALIDATION_PROFILES = ("standard", "ohif", "slicer")

#: reference series kept per worker process (headers, and pixels once a job needed them)
CACHE_SIZE = 4
CACHE_SECONDS = 300.0
#: a mask may declare this many reference grids of voxels (4-D stacks), or one per described
#: segment when more are described, before it is read at all
MIN_STACKED_MASKS = 4
_refs: OrderedDict[str, tuple[float, object]] = OrderedDict()
_options: WebOptions | None = None


def init_worker(options: WebOptions) -> None:
    """Process pool initializer: PACS options, quiet signals and warnings."""
    import logging
    import signal
    import warnings

    global _options
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server process decides when to stop
    from ..web.client import set_default_options

    _options = options
    set_default_options(options)
    warnings.filterwarnings("ignore")
    for name in ("pydicom", "retrying", "dicomweb_client", "highdicom"):
        logging.getLogger(name).setLevel(logging.ERROR)


def warm() -> bool:
    """Import what the jobs need, so the first request does not pay for it."""
    import dicomweb_client  # noqa: F401
    import nibabel  # noqa: F401
    import pydicom.pixels  # noqa: F401
    import requests  # noqa: F401

    from .. import io  # noqa: F401
    from ..dicom import seg_reader, seg_writer  # noqa: F401
    from ..validate import validate  # noqa: F401
    from ..web import publish, transfer  # noqa: F401

    return True


# ---------------------------------------------------------------------------------------------
# request parameters (checked in the server process, before any work is queued)
# ---------------------------------------------------------------------------------------------
def _choice(params: dict, key: str, allowed: tuple, default):
    v = params.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str) or v.lower() not in allowed:
        raise InvalidInputError(f"{key} must be one of {', '.join(allowed)}, got "
                                f"{str(v)[:40]!r}")
    return v.lower()


def check_params(params, pacs: str, *, need_reference: bool = True) -> dict:
    """The JSON ``request`` part, checked; the reference becomes a series URL on ``pacs``
    (a URL on any other server is refused: the service's PACS credentials go only there)."""
    from ..web.publish import series_url

    if not isinstance(params, dict):
        raise InvalidInputError("the request part must be a JSON object")
    known = {"reference", "segments", "profile", "type", "compression", "series_description",
             "fractional"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InvalidInputError(f"unknown request field(s): {', '.join(unknown)} (known: "
                                f"{', '.join(sorted(known))})")
    ref = params.get("reference")
    url = None
    if isinstance(ref, str):
        try:
            root, study, series = split_series_url(ref)
            shown = public(ref)  # never echo user-info
            same = _norm(root) == _norm(pacs)
        except ValueError:  # urlsplit: "http://[" and kin
            shown, same = "(not a URL)", False
        if not same:
            raise InvalidInputError(f"reference {one_line(shown)[:200]!r}: not on this "
                                    f"service's PACS ({public(pacs)}); give study and series "
                                    "UIDs, or a series URL on it")
        # rebuilt on the service's own root: user-info, query or a fragment in the client's
        # URL never reach the PACS
        url = series_url(pacs, study or "", series or "")
    elif isinstance(ref, dict):
        url = series_url(pacs, str(ref.get("study") or ""), str(ref.get("series") or ""))
    elif ref is not None or need_reference:
        raise InvalidInputError("reference: give {\"study\": UID, \"series\": UID} or the "
                                "series URL .../studies/<uid>/series/<uid> on the PACS")
    desc = params.get("series_description")
    if desc is not None and (not isinstance(desc, str) or len(desc) > 64):
        raise InvalidInputError("series_description must be text of at most 64 characters")
    segments = params.get("segments")
    if segments is not None and not isinstance(segments, list | dict):
        raise InvalidInputError("segments must be a list of {label, value, color} or a dcmqi "
                                "metadata object with segmentAttributes")
    compression = _choice(params, "compression", COMPRESSIONS, None)
    fractional = params.get("fractional")
    if fractional is not None and not isinstance(fractional, bool):
        raise InvalidInputError(f"fractional must be true or false, got {str(fractional)[:40]!r}")
    return {"reference": url, "segments": segments,
            "profile": _choice(params, "profile", PROFILES, "ohif"),
            "type": _choice(params, "type", TYPES, "auto"),
            "compression": compression, "series_description": desc,
            "fractional": bool(fractional)}


def _norm(url: str) -> str:
    return public(url).rstrip("/").lower()


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def classify(exc: BaseException) -> tuple[int, str]:
    """HTTP status and error kind of an exception a job raised."""
    from ..web.publish import DeadlineExceeded, UnknownFormat, remote_kind

    if isinstance(exc, UnknownFormat):
        return 415, "unsupported_media_type"
    if isinstance(exc, RemoteError):
        kind = remote_kind(exc)
        return {"not_found": 404, "unreachable": 503, "timeout": 504}.get(kind, 502), \
            {"unreachable": "pacs_unreachable", "timeout": "pacs_timeout",
             "auth": "pacs_auth"}.get(kind, kind)
    if isinstance(exc, DeadlineExceeded):
        return 504, "timeout"
    if isinstance(exc, GeometryMismatchError):
        return 422, "geometry_mismatch"
    if isinstance(exc, ValidationFailed):
        return 422, "validation_failed"
    if isinstance(exc, UnsupportedError):
        return 422, "unsupported"
    if isinstance(exc, InvalidInputError):
        return 422, "invalid_input"
    if isinstance(exc, SegbridgeError):
        return 422, "error"
    if isinstance(exc, MemoryError):
        return 413, "out_of_memory"
    if isinstance(exc, OSError):
        return 500, "server_io"
    return 500, "internal"


def one_line(text) -> str:
    """A message on one line, control characters escaped (as the CLI prints it)."""
    line = "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)


def _message(exc: BaseException, work: str, names: dict[str, str]) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, SegbridgeError):
        text = exc.strerror or str(exc)
    elif isinstance(exc, MemoryError):
        text = "out of memory (the data is larger than this service can hold at once)"
    elif not isinstance(exc, SegbridgeError):
        text = f"internal error ({type(exc).__name__}); the server log has the details"
    else:
        text = str(exc)
    for path, name in names.items():
        text = text.replace(path, name)
    return one_line(text.replace(work.rstrip("/") + "/", "").replace(work, "."))


def _run(work: str, names: dict[str, str], fn, *args) -> dict:
    try:
        return {"ok": True, "result": fn(*args)}
    except BaseException as exc:  # noqa: BLE001 (every failure becomes a plain answer)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        status, kind = classify(exc)
        out = {"ok": False, "status": status, "kind": kind,
               "message": _message(exc, work, names)}
        if isinstance(exc, ValidationFailed) and exc.findings:
            from dataclasses import asdict

            out["findings"] = [asdict(f) for f in exc.findings]
        if status == 500:
            out["trace"] = traceback.format_exc()
        return out


# ---------------------------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------------------------
def reference(url: str, report: Report | None = None):
    """The reference series at ``url``, from this process's cache when fresh."""
    from ..web.publish import load_pacs_reference

    now = time.monotonic()
    hit = _refs.get(url)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        _refs.move_to_end(url)
        return hit[1]
    ref = load_pacs_reference(url, options=_options, report=report)
    _refs[url] = (now, ref)
    _refs.move_to_end(url)
    while len(_refs) > CACHE_SIZE:
        _refs.popitem(last=False)
    return ref


def _declared_voxels(mask: Path) -> int | None:
    """Voxels a NIfTI / NRRD header says its data hold (read from the header only), or None
    for other formats and headers the readers will refuse anyway."""
    import numpy as np

    suffixes = "".join(mask.suffixes).lower()
    try:
        if suffixes.endswith((".nii", ".nii.gz")):
            import nibabel as nib

            shape = nib.load(str(mask)).header.get_data_shape()
        elif suffixes.endswith(".nrrd"):
            from ..formats.nrrd_reader import read_header

            shape = read_header(mask)[0].get("sizes") or ()
        else:
            return None
        return int(np.prod([int(n) for n in shape], dtype=object))
    except Exception:  # noqa: BLE001 - the reader gives the one-line error
        return None


def _segment_count(segments) -> int:
    if isinstance(segments, list):
        return len(segments)
    if isinstance(segments, dict):
        return sum(len(g) for g in segments.get("segmentAttributes") or [] if isinstance(g, list))
    return 0


def _load(work: Path, mask: Path, name: str, params: dict, report: Report):
    import numpy as np

    from ..web.publish import load_mask

    ref = reference(params["reference"], report)
    # a compressed mask is refused before it is inflated when its header declares more than
    # the reference grid can hold (a few stacked masks, or one per described segment): a 3 MB
    # upload must not become GBs in a worker
    declared = _declared_voxels(mask)
    grid = int(np.prod(ref.grid.shape))
    channels = max(MIN_STACKED_MASKS, _segment_count(params.get("segments")))
    if declared is not None and declared > grid * channels:
        raise InvalidInputError(f"{name}: its header declares {declared} voxels; the reference "
                                f"grid {' x '.join(map(str, ref.grid.shape[::-1]))} holds "
                                f"{grid} per mask, so at most {channels} stacked masks "
                                f"({grid * channels} voxels) are read")
    seg = load_mask(mask, ref, segments=params["segments"], fractional=params["fractional"],
                    report=report, name=name)
    return ref, seg


def publish_job(work: str, mask: str, name: str, params: dict, pacs: str,
                deadline: float) -> dict:
    def go() -> dict:
        from ..web.publish import publish

        report = Report()
        ref, seg = _load(Path(work), Path(mask), name, params, report)
        result = publish(seg, ref, pacs, folder=work, options=_options, type=params["type"],
                         profile=params["profile"], compression=params["compression"],
                         series_description=params["series_description"], report=report,
                         deadline=deadline)
        return result.as_dict()

    return _run(work, {mask: name}, go)


def convert_job(work: str, mask: str, name: str, params: dict) -> dict:
    """The SEG file, or a zip of the split series; nothing stored."""
    def go() -> dict:
        import zipfile

        from ..web.publish import segment_summaries, write_seg_files

        report = Report()
        ref, seg = _load(Path(work), Path(mask), name, params, report)
        out = Path(work) / "seg"
        out.mkdir()
        written, findings = write_seg_files(
            seg, ref, out, type=params["type"], profile=params["profile"],
            compression=params["compression"],
            series_description=params["series_description"], report=report)
        if len(written) == 1:
            body, media = written[0], "application/dicom"
        else:
            body, media = Path(work) / "segmentation.zip", "application/zip"
            with zipfile.ZipFile(body, "w", zipfile.ZIP_STORED) as z:
                for p in written:
                    z.write(p, p.name)
        return {"path": str(body), "media_type": media, "files": [p.name for p in written],
                "findings": findings, "notes": report.notes, "warnings": report.warnings,
                "segments": [vars(s) for s in segment_summaries(seg)]}

    return _run(work, {mask: name}, go)


def validate_job(work: str, file: str, name: str, reference_url: str | None,
                 profile: str) -> dict:
    def go() -> dict:
        from ..validate import validate

        ref = reference(reference_url) if reference_url else None
        result = validate(file, reference=ref, profile=profile).to_dict()
        result["path"] = name
        return result

    return _run(work, {file: name}, go)


def _stored(work: Path, pacs: str, study: str, series: str):
    """Pull the SEG / RTSTRUCT series from the PACS; (its file, the image series URL)."""
    import pydicom

    from ..web.publish import SeriesNotFound, series_url
    from ..web.transfer import pull

    url = series_url(pacs, study, series)
    try:
        got = pull(pacs, study, work / "stored", series=series, options=_options, workers=2)
    except RemoteError as exc:
        if "has no instances" in str(exc) or "404 Not Found" in str(exc):
            raise SeriesNotFound(f"{public(url)}: no such series on the server") from None
        raise
    files = sorted(got.fetched) + sorted(got.skipped)
    if len(files) != 1:
        raise UnsupportedError(f"{public(url)}: the series holds {len(files)} instances; one "
                               "SEG or RTSTRUCT instance per series is measured")
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    ref_series = None
    for item in ds.get("ReferencedSeriesSequence") or []:  # SEG
        ref_series = str(item.get("SeriesInstanceUID", "") or "") or None
        break
    for fr in ds.get("ReferencedFrameOfReferenceSequence") or []:  # RTSTRUCT
        for st in fr.get("RTReferencedStudySequence") or []:
            for se in st.get("RTReferencedSeriesSequence") or []:
                ref_series = ref_series or str(se.get("SeriesInstanceUID", "") or "") or None
    if not ref_series:
        raise InvalidInputError(f"{public(url)}: the object names no referenced image series "
                                "(ReferencedSeriesSequence)")
    return files[0], series_url(pacs, study, ref_series)


def stored_job(work: str, pacs: str, study: str, series: str, what: str, query: dict) -> dict:
    """stats, measure or preview of a SEG / RTSTRUCT stored in the PACS, on its image."""
    def go() -> dict:
        from ..measure import job
        from ..measure.bidirectional import measure_all
        from ..measure.stats import compute_stats, parse_segment_list

        report = Report()
        file, image_url = _stored(Path(work), pacs, study, series)
        image = reference(image_url, report)
        loaded = job.load([file], image, report=report)
        if what in ("stats", "measure"):
            job.require_patient_space(loaded, "statistics" if what == "stats" else
                                      "bidirectional measurements (mm)")
        seg = loaded.seg
        name = f"series {series}"
        numbers = parse_segment_list(query.get("segments"), seg, name)
        head = {"study": study, "series": series, "image": public(image_url)}
        if what == "stats":
            result = compute_stats(seg, loaded.image, numbers=numbers,
                                   mode=query.get("mode") or "individual", report=report)
            return {**head, "mode": query.get("mode") or "individual",
                    "segments": [s.as_dict() for s in result], "notes": report.notes,
                    "warnings": report.warnings}
        if what == "measure":
            axes = measure_all(seg, numbers, report=report)
            return {**head, "segments": [a.as_dict() for a in axes], "notes": report.notes,
                    "warnings": report.warnings}
        from ..measure.render import render

        axes = [] if seg.frame_space else measure_all(seg, numbers)
        out = render(seg, loaded.image, Path(work) / "preview.png", numbers=numbers,
                     focus=query.get("focus"), slice_index=query.get("slice"), axes=axes,
                     title=f"{name} on {loaded.image.modality or 'image'}", report=report,
                     what=name, plane=query.get("plane") or "all")
        return {"path": str(out), "notes": report.notes, "warnings": report.warnings}

    return _run(work, {}, go)


def ping(pacs: str, options: WebOptions) -> None:
    """One QIDO-RS query (raises RemoteError when the PACS does not answer)."""
    from ..web.client import Endpoint

    ep = Endpoint(pacs, options)
    ep.call("checking the server", lambda c: c.search_for_studies(limit=1))


def remove(path: str | os.PathLike) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
