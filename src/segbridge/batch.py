"""Convert a whole collection from a manifest: a local process pool, or a Dask cluster.

A manifest is a CSV file, one case a row::

    case,inputs,reference,meta,output,type,profile,to,push
    p001,labels/p001.nii.gz,ct/p001,meta.json,p001.dcm,labelmap,ohif,,http://pacs/dicom-web

Only ``case`` and ``inputs`` are required; ``inputs`` holds one or more files separated by
``;``; relative paths are relative to the manifest's folder; ``reference`` may be a DICOMweb
series URL. A case is a plain dict, and :func:`run_case` never raises, so one broken case never
stops the others and the same function runs in a local process or on a Dask worker.

Each finished case is appended to a journal in the output folder as it ends; a rerun skips the
cases the journal records as done whose outputs are still there with the recorded sizes (resume
after a crash or a stopped cluster). ``results.csv`` is rewritten (atomically) at the end.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInputError, SegbridgeError
from .web.client import is_url

COLUMNS = ("case", "inputs", "reference", "meta", "output", "type", "profile", "to", "push",
           "compression", "series", "contour_fill")
RESULT_COLUMNS = ("case", "status", "message", "outputs", "seconds", "bytes", "segments")
JOURNAL = ".segbridge-batch.jsonl"


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """The cases of a manifest, with paths made absolute; bad manifests are one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such manifest")
    base = path.resolve().parent
    with open(path, newline="", encoding="utf-8-sig") as fp:
        reader = csv.DictReader(fp)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if "case" not in header or "inputs" not in header:
            raise InvalidInputError(f"{path}: a manifest needs the columns 'case' and 'inputs' "
                                    f"(found: {', '.join(header) or 'none'})")
        unknown = [h for h in header if h not in COLUMNS]
        if unknown:
            raise InvalidInputError(f"{path}: unknown column(s) {', '.join(unknown)}; known: "
                                    f"{', '.join(COLUMNS)}")
        cases, seen, outputs = [], set(), {}
        for line, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            if not any(row.values()):
                continue
            name = row.get("case", "")
            if not name:
                raise InvalidInputError(f"{path}: line {line}: empty case name")
            if name in seen:
                raise InvalidInputError(f"{path}: line {line}: case {name!r} appears twice")
            if "/" in name or name.startswith("."):
                raise InvalidInputError(f"{path}: line {line}: case name {name!r} must be a "
                                        "plain name")
            seen.add(name)
            case = {k: row.get(k, "") for k in COLUMNS}
            case["inputs"] = [str(_resolve(base, p)) for p in case["inputs"].split(";")
                              if p.strip()]
            for k in ("reference", "meta"):
                if case[k] and not is_url(case[k]):
                    case[k] = str(_resolve(base, case[k]))
            case["output"] = case["output"] or f"{name}.dcm"
            out = os.path.normpath(case["output"])
            if out in outputs:
                raise InvalidInputError(f"{path}: line {line}: case {name!r} writes "
                                        f"{case['output']}, as case {outputs[out]!r} does")
            outputs[out] = name
            cases.append(case)
    if not cases:
        raise InvalidInputError(f"{path}: the manifest has no cases")
    return cases


def _resolve(base: Path, p: str) -> Path:
    q = Path(p.strip()).expanduser()
    return q if q.is_absolute() else base / q


def fingerprint(case: dict) -> str:
    """What a case's outputs depend on: its row and the size and time of its local inputs.
    A rerun redoes a case whose fingerprint changed, even if its outputs are still there."""
    import hashlib

    row = dict(case)
    if row.get("contour_fill", "").lower() in ("", "centre"):
        row.pop("contour_fill", None)  # the default: same fingerprint as before the column
    h = hashlib.sha256(json.dumps(row, sort_keys=True).encode())
    for p in [*case["inputs"], case["meta"], case["reference"]]:
        if p and not is_url(p) and os.path.exists(p):
            st = os.stat(p)
            h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def error_row(case: str, message: str) -> dict:
    """A results row for a case that failed (or has not succeeded yet)."""
    return {"case": case, "status": "error", "message": message, "outputs": "",
            "seconds": 0.0, "bytes": 0, "segments": ""}


def run_case(case: dict, outdir: str, web: dict | None = None) -> dict:
    """Convert one case; a result row, also (and especially) when the case fails."""
    from . import io
    from .errors import Report

    t0 = time.perf_counter()
    row = error_row(case["case"], "")
    try:
        if not case["inputs"]:
            raise InvalidInputError("no inputs given")
        if web:
            from .web.client import WebOptions, set_default_options

            set_default_options(WebOptions(**web))
        output = Path(outdir) / case["output"]
        output.parent.mkdir(parents=True, exist_ok=True)
        report = Report()
        ref = io.load_reference(case["reference"] or None, series_uid=case["series"] or None,
                                report=report)
        seg = io.read(case["inputs"], reference=ref, meta=case["meta"] or None, report=report,
                      contour_fill=case["contour_fill"].lower() or "centre")
        to = (case["to"] or "seg").lower()
        if to not in ("seg", "rtstruct"):
            raise InvalidInputError(f"to must be seg or rtstruct, got {case['to']!r}")
        written = io.write(seg, output, type=case["type"] or "auto",
                           profile=case["profile"] or "ohif",
                           compression=case["compression"] or None, reference=ref,
                           report=report, to=to)
        row["outputs"] = ";".join(str(p) for p in written)
        row["bytes"] = sum(p.stat().st_size for p in written if p.is_file())
        row["segments"] = len(seg.segments)
        messages = [f"warning: {w}" for w in report.warnings]
        if case["push"]:
            from .web.transfer import push

            pushed = push([p for p in written if p.suffix == ".dcm"], case["push"])
            if not pushed.ok:
                file, uid, why = pushed.failed[0]
                raise SegbridgeError(f"push refused {len(pushed.failed)} instance(s): "
                                     f"{Path(file).name or uid}: {why}")
            messages.append(f"pushed {len(pushed.stored)} instance(s)")
        row["status"] = "ok"
        row["message"] = "; ".join(messages)
    except SegbridgeError as exc:
        row["message"] = str(exc)
    except Exception as exc:  # a bug must still not stop the other cases
        row["message"] = f"internal error: {type(exc).__name__}: {exc}"
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _run_local(cases, outdir, web, workers, done):
    if workers <= 1:
        for c in cases:
            done(run_case(c, outdir, web))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    broken = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_case, c, outdir, web): c for c in cases}
        for f in as_completed(futures):
            try:
                done(f.result())
            except BrokenProcessPool:
                broken.append(futures[f])
    # a worker died (killed, out of memory): the pool gives up on every case it still held;
    # run those again one by one, each in its own process, so only the culprit fails
    for c in broken:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            try:
                done(pool.submit(run_case, c, outdir, web).result())
            except BrokenProcessPool:
                done(error_row(c["case"], "the worker process died (killed, or out of "
                                          "memory?)"))


def _run_dask(cases, outdir, web, scheduler, workers, done):
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1,
                               processes=True, dashboard_address=None)
        address = cluster.scheduler_address
    else:
        address = scheduler
    try:
        try:
            client = Client(address, timeout="15s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SegbridgeError(f"cannot reach the Dask scheduler at {address} "
                                 f"({type(exc).__name__})") from None
        with client:
            futures = client.map(run_case, cases, outdir=outdir, web=web, pure=False,
                                 key=[f"segbridge-{c['case']}" for c in cases])
            names = {f.key: c["case"] for f, c in zip(futures, cases, strict=True)}
            for f in as_completed(futures):
                try:
                    done(f.result())
                except Exception as exc:  # the worker itself failed
                    done(error_row(names[f.key], f"Dask: {type(exc).__name__}: {exc}"))
    finally:
        if cluster is not None:
            cluster.close()


@dataclass
class BatchResult:
    rows: list[dict] = field(default_factory=list)
    results_csv: Path | None = None

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "error"]


def _journal(outdir: Path) -> dict[str, dict]:
    """Cases a previous run finished, whose outputs are still whole (by recorded size);
    each with the fingerprint it ran with."""
    done = {}
    path = outdir / JOURNAL
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if row.get("status") not in ("ok", "skipped"):
            done.pop(row.get("case"), None)
            continue
        sizes = row.get("sizes", {})
        if sizes and all(Path(p).is_file() and Path(p).stat().st_size == n
                         for p, n in sizes.items()):
            done[row["case"]] = row
    return done


def run_batch(manifest: str | os.PathLike, outdir: str | os.PathLike, *, workers: int = 1,
              scheduler: str | None = None, web=None,
              progress: Callable[[int, int], None] | None = None,
              on_row: Callable[[dict], None] | None = None) -> BatchResult:
    """Run every case of ``manifest`` into ``outdir``; results.csv lists each case's fate."""
    cases = read_manifest(manifest)
    out = Path(outdir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    previous = _journal(out)
    web_dict = web.as_dict() if web is not None else None
    rows: dict[str, dict] = {}
    total = len(cases)
    todo = []
    keys = {c["case"]: fingerprint(c) for c in cases}
    for c in cases:
        p = previous.get(c["case"])
        if p is not None and p.get("key") == keys[c["case"]]:
            rows[c["case"]] = {**{k: p.get(k, "") for k in RESULT_COLUMNS}, "status": "skipped",
                               "message": "outputs of an earlier run are complete"}
        else:
            todo.append(c)
    if progress:
        progress(len(rows), total)
    journal = open(out / JOURNAL, "a", encoding="utf-8")

    def done(row: dict) -> None:
        rows[row["case"]] = row
        sizes = {p: Path(p).stat().st_size for p in row["outputs"].split(";")
                 if p and Path(p).is_file()} if row["status"] == "ok" else {}
        journal.write(json.dumps({**row, "sizes": sizes, "key": keys[row["case"]]}) + "\n")
        journal.flush()
        if on_row:
            on_row(row)
        if progress:
            progress(len(rows), total)

    try:
        if scheduler:
            _run_dask(todo, str(out), web_dict, scheduler, workers, done)
        else:
            _run_local(todo, str(out), web_dict, workers, done)
    finally:
        journal.close()
    ordered = [rows[c["case"]] for c in cases if c["case"] in rows]
    target = out / "results.csv"
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fp:
        w = csv.DictWriter(fp, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(ordered)
    os.replace(tmp, target)
    return BatchResult(ordered, target)
