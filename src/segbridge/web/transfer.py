"""Pull a study or series from a DICOMweb server, push files to it.

pull: QIDO-RS lists the series and their instances; WADO-RS fetches a series that has nothing
here yet in one streamed request (several series in parallel), and the missing instances of a
partly fetched series one by one, in parallel (one connection per worker). Each file is written under a temporary name and renamed when it is
complete, so a file that exists is whole: a rerun skips it (resume). What arrives is checked
(study / series / SOP Instance UID as requested, and the count QIDO announced).

push: STOW-RS in batches. The server's answer is read: every instance it lists in
FailedSOPSequence is reported with its reason, and the result says whether everything was
stored.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from ..errors import InvalidInputError, RemoteError, SegbridgeError
from .client import Endpoint, WebOptions, multipart_parts, public, split_series_url, stream_parts

# PS3.18 Table I.2-1 / PS3.4 failure reasons of STOW-RS
FAILURE_REASONS = {
    0x0110: "processing failure", 0x0122: "SOP class not supported",
    0x0124: "not authorized", 0x0211: "unrecognized operation",
    0xA700: "out of resources", 0xA900: "data set does not match SOP class / study UID",
    0xC000: "cannot understand", 0xC122: "referenced transfer syntax not supported",
    0xA770: "transfer syntax not supported", 0xB000: "coercion of data elements",
    0xB006: "elements discarded", 0xB007: "data set does not match SOP class (warning)",
}


def _tag(item: dict, tag: str):
    v = item.get(tag, {}).get("Value")
    return v[0] if v else None


@dataclass
class PullResult:
    folder: Path
    fetched: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    series: dict[str, int] = field(default_factory=dict)  # series UID -> instances announced
    bytes: int = 0


def pull(url: str, study: str, out: str | os.PathLike, *, series: str | None = None,
         options: WebOptions | None = None, workers: int = 4,
         progress: Callable[[int, int], None] | None = None,
         on_file: Callable[[Path], None] | None = None) -> PullResult:
    """Fetch every instance of ``study`` (or of one ``series``) into ``out/<series>/``."""
    ep = Endpoint(url, options)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"{folder}: exists and is not a folder")
    created = not folder.exists()
    try:
        return _pull(ep, url, study, folder, series, workers, progress, on_file)
    except BaseException:
        if created and folder.is_dir() and not any(p.is_file() for p in folder.rglob("*")):
            shutil.rmtree(folder, ignore_errors=True)  # nothing arrived: leave nothing behind
        raise


def _pull(ep, url, study, folder, series, workers, progress, on_file) -> PullResult:
    result = PullResult(folder)
    if series is None:
        listing = ep.call(f"listing the series of study {study}",
                          lambda c: c.search_for_series(study, get_remaining=True))
        uids = [_tag(s, "0020000E") for s in listing]
    else:
        uids = [series]
    if not uids:
        raise RemoteError(f"{public(url)}: study {study} has no series there")
    for stale in folder.glob("*/.part.*.tmp"):  # left by a pull that was killed
        if not _alive(stale.name.split(".")[-2]):
            stale.unlink(missing_ok=True)
    sops_of: dict[str, set[str]] = {}
    whole: list[str] = []  # series with nothing here yet: one streamed request
    single: list[tuple[str, str]] = []  # instances missing from a partly present series
    for s in uids:
        instances = ep.call(f"listing the instances of series {s}",
                            lambda c, s=s: c.search_for_instances(study, s, get_remaining=True))
        if not instances:
            raise RemoteError(f"{public(url)}: series {s} of study {study} has no instances")
        result.series[s] = len(instances)
        sops = [_tag(inst, "00080018") for inst in instances]
        sops_of[s] = set(sops)
        have = {sop for sop in sops if (folder / s / f"{sop}.dcm").exists()}
        result.skipped.extend(folder / s / f"{sop}.dcm" for sop in sops if sop in have)
        if not have:
            whole.append(s)
        else:
            single.extend((s, sop) for sop in sops if sop not in have)
    total = sum(result.series.values())
    lock = threading.Lock()
    stop = threading.Event()
    if progress:
        progress(len(result.skipped), total)

    def arrived(path: Path, size: int) -> None:
        with lock:
            result.fetched.append(path)
            result.bytes += size
            n = len(result.fetched) + len(result.skipped)
        if progress:
            progress(n, total)
        if on_file:
            on_file(path)

    def store(data: bytes, s: str, expected: set[str]) -> None:
        if stop.is_set():
            raise _Stopped
        (folder / s).mkdir(parents=True, exist_ok=True)
        tmp = folder / s / f".part.{threading.get_ident()}.{os.getpid()}.tmp"
        try:
            _write_part10(data, tmp)
            got = _uids(tmp)
            if got[:2] != (study, s) or got[2] not in expected:
                raise RemoteError(f"{public(url)}: asked for series {s}, received instance "
                                  f"{got[2] or '<no UID>'} of series {got[1] or '<none>'}")
            size = tmp.stat().st_size
            target = folder / s / f"{got[2]}.dcm"
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        arrived(target, size)

    def fetch_series(s: str) -> None:
        import requests

        def do(client):
            try:
                r = ep.request("GET", f"/studies/{study}/series/{s}",
                               headers={"Accept": ACCEPT_PART10}, stream=True)
            except requests.exceptions.HTTPError as exc:
                if exc.response is not None and exc.response.status_code in NO_SERIES_RETRIEVE:
                    return  # this server will not send a whole series: instance by instance
                raise
            with r:
                for part in stream_parts(r):
                    store(part, s, sops_of[s])

        ep.call(f"retrieving series {s}", do)
        # what the series answer did not hold (or all of it, if refused) comes one by one
        missing = [sop for sop in sops_of[s] if not (folder / s / f"{sop}.dcm").exists()]
        _run_all([lambda sop=sop: fetch_instance(s, sop) for sop in missing], workers, stop)

    def fetch_instance(s: str, sop: str) -> None:
        if stop.is_set():
            raise _Stopped
        data = ep.call(f"retrieving instance {sop}", lambda c: _get_instance(ep, study, s, sop))
        store(data, s, {sop})

    jobs = [lambda s=s: fetch_series(s) for s in whole]
    jobs += [lambda s=s, sop=sop: fetch_instance(s, sop) for s, sop in single]
    _run_all(jobs, workers, stop)
    for s, n in result.series.items():
        have = sum((folder / s / f"{sop}.dcm").exists() for sop in sops_of[s])
        if have < n:
            raise RemoteError(f"{public(url)}: series {s}: {have} of {n} instances arrived; "
                              "run the same pull again to fetch the rest")
    return result


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


class _Stopped(Exception):
    """Raised in a worker thread when the main thread gave up (an error, or Ctrl-C)."""


def _run_all(jobs, workers: int, stop: threading.Event) -> None:
    """Run the jobs on a thread pool; on the first failure (or Ctrl-C) tell the others to
    stop, drop what has not started, and do not wait for the running ones."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    futures = [pool.submit(job) for job in jobs]
    try:
        for f in as_completed(futures):
            f.result()
    except BaseException:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


# answers meaning "no series-level retrieval here" (not "no such series"): fall back
NO_SERIES_RETRIEVE = (400, 406, 415, 501)
ACCEPT_PART10 = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def _get_instance(ep: Endpoint, study: str, series: str, sop: str) -> bytes:
    """The instance as the server stores it (any transfer syntax), without decoding it."""
    r = ep.request("GET", f"/studies/{study}/series/{series}/instances/{sop}",
                   headers={"Accept": ACCEPT_PART10})
    parts = multipart_parts(r.content, r.headers.get("Content-Type", ""))
    if len(parts) != 1:
        raise ValueError(f"{len(parts)} parts in the answer for one instance")
    return parts[0]


def fetch_instances(url: str, study: str, series: str, sops: Sequence[str], folder: Path, *,
                    options: WebOptions | None = None) -> list[Path]:
    """Retrieve instances whose UIDs are known (WADO-RS, no QIDO listing first) into
    ``folder/<sop>.dcm``; one RemoteError line for any failure."""
    ep = Endpoint(url, options)
    out = []
    for sop in sops:
        data = ep.call(f"retrieving instance {sop}",
                       lambda c, sop=sop: _get_instance(ep, study, series, sop))
        path = folder / f"{sop}.dcm"
        _write_part10(data, path)
        out.append(path)
    return out


def _write_part10(data: bytes, path: Path) -> None:
    """A DICOM file from a WADO-RS part (Part 10 already, or a bare data set to wrap)."""
    if data[128:132] == b"DICM":
        path.write_bytes(data)
        return
    import pydicom

    try:
        ds = pydicom.dcmread(BytesIO(data), force=True)
        ds.save_as(path, enforce_file_format=True)
    except Exception as exc:
        raise ValueError(f"a part is not DICOM ({type(exc).__name__})") from None


def _uids(source) -> tuple[str, str, str]:
    """Study, series and SOP Instance UID of a DICOM file (a path or a file object)."""
    import pydicom

    ds = pydicom.dcmread(source, stop_before_pixels=True,
                         specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
    return (str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")),
            str(ds.get("SOPInstanceUID", "")))


@dataclass
class PushResult:
    stored: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # file, SOP UID, reason
    warnings: list[tuple[str, str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # not DICOM files in the folders given
    bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def dicom_files(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """DICOM files among ``paths`` (folders searched), and the other files found there."""
    files, others = [], []
    for p in map(Path, paths):
        if p.is_dir():
            cand = sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith("."))
        elif p.is_file():
            cand = [p]
        else:
            raise InvalidInputError(f"{p}: no such file or folder")
        for q in cand:
            with open(q, "rb") as fp:
                head = fp.read(132)
            (files if head[128:132] == b"DICM" else others).append(q)
    return files, others


def push(paths: Sequence[str | os.PathLike], url: str, *, options: WebOptions | None = None,
         study: str | None = None, batch_size: int = 50, batch_bytes: int = 64 << 20,
         workers: int = 2,
         progress: Callable[[int, int], None] | None = None) -> PushResult:
    """STOW-RS every DICOM file in ``paths``; refused instances are in ``failed``.

    With ``study`` the request goes to ``/studies/<study>``: the server stores only instances
    of that study and refuses the others (a guard against filing a SEG in the wrong study).
    """
    root, url_study, url_series = split_series_url(url)
    if url_series:
        raise InvalidInputError(f"{public(url)}: STOW-RS stores into a study, not a series; "
                                "give the DICOMweb root or a .../studies/<uid> URL")
    if url_study and study and url_study != study:
        raise InvalidInputError(f"--study {study} and the URL's study {url_study} differ")
    study = study or url_study
    ep = Endpoint(root, options)
    files, others = dicom_files(paths)
    result = PushResult(skipped=[str(o) for o in others])
    if not files:
        raise InvalidInputError("nothing to push: no DICOM files (with the DICM preamble) found")
    batches, cur, size = [], [], 0
    for f in files:
        n = f.stat().st_size
        if cur and (len(cur) >= batch_size or size + n > batch_bytes):
            batches.append(cur)
            cur, size = [], 0
        cur.append(f)
        size += n
    batches.append(cur)
    lock = threading.Lock()
    done = 0

    stop = threading.Event()

    def send(batch: list[Path]) -> None:
        nonlocal done
        if stop.is_set():
            raise _Stopped
        parts, names, failed = [], {}, []
        for f in batch:
            try:
                data = f.read_bytes()  # read once: the UID comes from the bytes sent
                uid = _uids(BytesIO(data))[2]
            except Exception as exc:  # a broken file is that file's failure, not the batch's
                failed.append((str(f), "", f"unreadable: {type(exc).__name__}"))
                continue
            parts.append(data)
            names[uid] = str(f)
        answer = _store(ep, parts, study) if parts else {}
        with lock:
            result.failed.extend(failed)
            result.bytes += sum(len(p) for p in parts)
            if parts:
                _collect(answer, names, result)
            done += len(batch)
            n = done
        if progress:
            progress(n, len(files))

    _run_all([lambda b=b: send(b) for b in batches], workers, stop)
    return result


def _store(ep: Endpoint, parts: list[bytes], study: str | None = None) -> dict:
    """POST one batch of Part 10 files as they are (no decoding, no re-encoding); the
    server's JSON answer, also when it refused some or all of them (409 / 400)."""
    import requests

    boundary = uuid.uuid4().hex
    body = bytearray()
    for part in parts:
        body += (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode()
        body += part
        body += b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f'multipart/related; type="application/dicom"; '
                               f"boundary={boundary}",
               "Accept": "application/dicom+json"}

    def do(client):
        try:
            r = ep.request("POST", f"/studies/{study}" if study else "/studies",
                           headers=headers, data=bytes(body))
        except requests.exceptions.HTTPError as exc:
            r = exc.response
            if r is None or r.status_code not in (400, 409) or not r.content:
                raise
        return r.json() if r.content else {}

    return ep.call(f"storing {len(parts)} instances", do)


def _collect(answer: dict, names: dict, result: PushResult) -> None:
    failed = {}
    for item in answer.get("00081198", {}).get("Value", []) or []:
        uid = _tag(item, "00081155") or ""
        code = _tag(item, "00081197")
        failed[uid] = _reason(code)
    stored = set()
    for item in answer.get("00081199", {}).get("Value", []) or []:
        uid = _tag(item, "00081155") or ""
        stored.add(uid)
        warn = _tag(item, "00081196")
        if warn is not None:
            result.warnings.append((names.get(uid, ""), uid, _reason(warn)))
    for uid, file in names.items():
        if uid in failed:
            result.failed.append((file, uid, failed[uid]))
        elif uid in stored:
            result.stored.append(uid)
        else:
            result.failed.append((file, uid, "not listed in the server's answer"))


def _reason(code) -> str:
    if code is None:
        return "no reason given"
    code = int(code)
    return f"{FAILURE_REASONS.get(code, 'failure')} (0x{code:04X})"


def push_written(written: Sequence[Path], url: str) -> str:
    """Push the DICOM files a case wrote (batch, dataset import); the message for its report
    row, or SegbridgeError naming the first refused instance (the outputs are kept)."""
    pushed = push([p for p in written if p.suffix == ".dcm"], url)
    if not pushed.ok:
        file, uid, why = pushed.failed[0]
        raise SegbridgeError(f"push refused {len(pushed.failed)} instance(s): "
                             f"{Path(file).name or uid}: {why} (the outputs are kept)")
    return f"pushed {len(pushed.stored)} instance(s)"
