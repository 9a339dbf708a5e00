"""Convert a whole collection from a manifest: a local process pool, or a Dask cluster.

A manifest is a CSV file, one case a line (:mod:`segbridge.manifest` has the rules)::

    case,inputs,reference,meta,output,type,profile,to,push
    p001,labels/p001.nii.gz,ct/p001,meta.json,p001.dcm,labelmap,ohif,,http://pacs/dicom-web

Only ``case`` and ``inputs`` are required; ``inputs`` holds one or more files separated by
``;``; relative paths are relative to the manifest's folder; ``reference`` may be a DICOMweb
series URL. A case is a plain dict, and :func:`run_case` never raises, so one broken case never
stops the others and the same function runs in a local process or on a Dask worker.

Before anything runs, every file each case may write is resolved (:mod:`segbridge.batch_plan`):
cases whose files collide, leave the output folder or would write over an input are refused,
each with a result line; every line of the manifest gets one in ``results.csv``.

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
from .manifest import COLUMNS, Manifest, read_manifest, refused_row, truthy
from .web.client import is_url

__all__ = ["COLUMNS", "Manifest", "BatchResult", "fingerprint", "read_manifest", "run_batch",
           "run_case", "run_parallel"]

RESULT_COLUMNS = ("case", "status", "message", "outputs", "seconds", "bytes", "segments", "line")
JOURNAL = ".segbridge-batch.jsonl"
RESULTS = "results.csv"


def fingerprint(case: dict) -> str:
    """What a case's outputs depend on: its row and the size and time of its local inputs.
    A rerun redoes a case whose fingerprint changed, even if its outputs are still there."""
    import hashlib

    row = {k: case[k] for k in COLUMNS if k in case}
    # defaults of columns added later: the same fingerprint as before the column existed
    if row.get("contour_fill", "").lower() in ("", "centre"):
        row.pop("contour_fill", None)
    if not truthy(row.get("assign_uids", "")):
        row.pop("assign_uids", None)
    h = hashlib.sha256(json.dumps(row, sort_keys=True).encode())
    rel = case.get("relabel")
    if rel:  # the maps by content: an edited map file redoes the cases
        h.update(json.dumps({"maps": [m.digest for m in rel["maps"]],
                             "unmapped": rel["unmapped"],
                             "allow_merge": rel["allow_merge"]}).encode())
    for p in [*case["inputs"], case["meta"], case["reference"]]:
        if p and not is_url(p) and os.path.exists(p):
            for f in _files_of(p):
                st = os.stat(f)
                h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _files_of(path: str) -> list[str]:
    """A file, or every file under a folder (a reference series or a mask folder): a slice
    rewritten in place changes the folder's files, not the folder's own time."""
    if not os.path.isdir(path):
        return [path]
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        out += [os.path.join(root, f) for f in sorted(files)]
    return out


def error_row(case: str, message: str, line: int | str = "") -> dict:
    """A results row for a case that failed (or has not succeeded yet)."""
    return {"case": case, "status": "error", "message": message, "outputs": "",
            "seconds": 0.0, "bytes": 0, "segments": "", "line": line}


def _one_line(text: object) -> str:
    """The first line of a message (wrapped libraries sometimes say more)."""
    lines = str(text).strip().splitlines()
    return lines[0].strip() if lines else ""


def run_case(case: dict, outdir: str, web: dict | None = None) -> dict:
    """Convert one case; a result row, also (and especially) when the case fails.

    ``case["target"]`` (set by :func:`run_batch` from the plan) is the real path of the output;
    without it the output is ``outdir / case["output"]``. Folders made for a case that fails
    are removed again when empty.
    """
    from . import io
    from .errors import Report

    t0 = time.perf_counter()
    row = error_row(case["case"], "", case.get("line", ""))
    made: list[Path] = []
    try:
        if not case["inputs"]:
            raise InvalidInputError("no inputs given")
        if web:
            from .web.client import WebOptions, set_default_options

            set_default_options(WebOptions(**web))
        output = Path(case.get("target") or Path(outdir) / case["output"])
        made = _make_folders(output.parent)
        report = Report()
        assign = truthy(case.get("assign_uids", ""))
        ref = io.load_reference(case["reference"] or None, series_uid=case["series"] or None,
                                assign_uids=assign, report=report)
        seg = io.read(case["inputs"], reference=ref, meta=case["meta"] or None, report=report,
                      contour_fill=case["contour_fill"].lower() or "centre")
        protect = list(io.read_from(seg))
        rel = case.get("relabel")
        if rel:
            from .harmonise import relabel

            seg = relabel(seg, rel["maps"], unmapped=rel["unmapped"],
                          allow_merge=rel["allow_merge"], report=report,
                          what=", ".join(Path(p).name for p in case["inputs"]))
            protect += [m.path for m in rel["maps"] if m.path is not None]
        to = (case["to"] or "seg").lower()
        if to not in ("seg", "rtstruct"):
            raise InvalidInputError(f"to must be seg or rtstruct, got {case['to']!r}")
        written = io.write(seg, output, type=case["type"] or "auto",
                           profile=case["profile"] or "ohif",
                           compression=case["compression"] or None, reference=ref,
                           report=report, to=to, protect=protect)
        if ref is not None and ref.assigned_uids:
            from .outputs import reference_copy_dir
            from .series import write_reference_copy

            written.append(write_reference_copy(ref, reference_copy_dir(output)))
        made = []  # the folders now hold the outputs
        row["outputs"] = ";".join(str(p) for p in written)
        row["bytes"] = sum(p.stat().st_size for p in written if p.is_file())
        row["segments"] = len(seg.segments)
        messages = [f"warning: {w}" for w in report.warnings]
        if case["push"]:
            from .web.transfer import push_written

            messages.append(push_written(written, case["push"]))
        row["status"] = "ok"
        row["message"] = "; ".join(messages)
    except SegbridgeError as exc:
        row["message"] = str(exc)
    except OSError as exc:  # the disk or the file system: the case fails, not the batch
        where = exc.filename or case["output"]
        row["message"] = f"{where}: {exc.strerror or type(exc).__name__}"
    except Exception as exc:  # a bug must still not stop the other cases
        row["message"] = f"internal error: {type(exc).__name__}: {exc}"
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (another case writes there too) or gone
    row["message"] = _one_line(row["message"])
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, outermost first."""
    missing = []
    for q in (folder, *folder.parents):
        if q.exists():
            break
        missing.append(q)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"{folder}: cannot create the folder "
                                f"({exc.strerror or type(exc).__name__})") from None
    return missing[::-1]


def _run_local(cases, outdir, web, workers, done, fn=run_case):
    if workers <= 1:
        for c in cases:
            done(fn(c, outdir, web))
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    broken = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(fn, c, outdir, web): c for c in cases}
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
                done(pool.submit(fn, c, outdir, web).result())
            except BrokenProcessPool:
                done(error_row(c["case"], "the worker process died (killed, or out of "
                                          "memory?)", c.get("line", "")))


def memory_limit_value(text: str) -> str:
    """A ``--memory-limit`` as Dask takes it: ``auto`` or a size (``1GB``, ``800MiB``);
    one-line InvalidInputError otherwise."""
    value = text.strip()
    if value.lower() == "auto":
        return "auto"
    from dask.utils import parse_bytes

    try:
        n = parse_bytes(value)
    except (ValueError, TypeError):
        n = 0
    if n <= 0:
        raise InvalidInputError(f"--memory-limit {text!r}: give a size per worker such as 1GB "
                                "or 800MiB (or auto)")
    return value


def _run_dask(cases, outdir, web, scheduler, workers, done, memory_limit=None, fn=run_case):
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler == "local":
        # memory_limit is per worker process: Dask pauses a worker at 80 % of it and its nanny
        # restarts it at 95 % (distributed.worker.memory.pause / .terminate)
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1,
                               processes=True, dashboard_address=None,
                               memory_limit=memory_limit or "auto")
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
            futures = client.map(fn, cases, outdir=outdir, web=web, pure=False,
                                 key=[f"segbridge-{c['case']}" for c in cases])
            of = {f.key: c for f, c in zip(futures, cases, strict=True)}
            for f in as_completed(futures):
                try:
                    done(f.result())
                except Exception as exc:  # the worker itself failed
                    c = of[f.key]
                    done(error_row(c["case"], f"Dask: {type(exc).__name__}: {exc}",
                                   c.get("line", "")))
    finally:
        if cluster is not None:
            cluster.close()


def run_parallel(fn: Callable[[dict, str, dict | None], dict], cases: list[dict], outdir: str,
                 done: Callable[[dict], None], *, workers: int = 1, scheduler: str | None = None,
                 web: dict | None = None, memory_limit: str | None = None) -> None:
    """Run ``fn(case, outdir, web)`` for every case as batch does: in this process, on a pool
    of ``workers`` spawn processes, or on Dask (``scheduler``: an address or ``"local"``).

    ``fn`` must be importable by name (it is sent to the workers), take and return plain
    values and never raise: each result row (a dict with ``case``, ``status``, ``message``)
    goes to ``done`` in this process as it arrives. A worker that dies gives its case an
    error row. Used by :mod:`segbridge.datasets` (export and import).
    """
    if memory_limit is not None:
        if scheduler != "local":
            raise InvalidInputError("--memory-limit sets the memory of the workers --scheduler "
                                    "local starts")
        memory_limit = memory_limit_value(memory_limit)
    if not cases:
        return
    if scheduler:
        _run_dask(cases, outdir, web, scheduler, workers, done, memory_limit, fn=fn)
    else:
        _run_local(cases, outdir, web, max(1, workers), done, fn=fn)


@dataclass
class BatchResult:
    rows: list[dict] = field(default_factory=list)
    results_csv: Path | None = None

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "error"]


def _journal(outdir: Path) -> dict[str, dict]:
    """Cases a previous run finished, whose outputs are still whole (by recorded size);
    each with the fingerprint it ran with. Lines a crash cut, or that are not ours, are
    ignored (that case simply runs again)."""
    done: dict[str, dict] = {}
    path = outdir / JOURNAL
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return done
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the batch journal "
                                f"({exc.strerror or type(exc).__name__})") from None
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if not isinstance(row, dict) or not isinstance(row.get("case"), str):
            continue
        if row.get("status") not in ("ok", "skipped"):
            done.pop(row["case"], None)
            continue
        sizes = row.get("sizes")
        if isinstance(sizes, dict) and sizes and all(
                isinstance(p, str) and Path(p).is_file() and Path(p).stat().st_size == n
                for p, n in sizes.items()):
            done[row["case"]] = row
    return done


def _output_folder(outdir: str | os.PathLike, manifest: Path) -> Path:
    """The -o folder, created if needed, as a real path; one-line errors when it cannot be."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out}: exists and is not a folder; -o names the folder for "
                                "the outputs and results.csv")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"{out}: cannot create the output folder "
                                f"({exc.strerror or type(exc).__name__})") from None
    out = Path(os.path.realpath(out))
    if not os.access(out, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{out}: the output folder is not writable")
    if Path(os.path.realpath(manifest)) == out / RESULTS:
        raise InvalidInputError(f"{manifest}: the manifest is the results.csv this batch would "
                                "write; choose another -o folder or rename the manifest")
    return out


def run_batch(manifest: str | os.PathLike, outdir: str | os.PathLike, *, workers: int = 1,
              scheduler: str | None = None, web=None,
              progress: Callable[[int, int], None] | None = None,
              on_row: Callable[[dict], None] | None = None,
              memory_limit: str | None = None, maps=None, unmapped: str = "keep",
              allow_merge: bool = False) -> BatchResult:
    """Run every case of ``manifest`` into ``outdir``; results.csv lists each line's fate.

    ``memory_limit`` (``scheduler="local"`` only) is Dask's ``memory_limit`` of each
    LocalCluster worker; the workers of an external cluster keep the limit they were started
    with (``dask worker --memory-limit``). When every case is already done no cluster is
    started (and no scheduler contacted).

    ``maps`` (with ``unmapped`` and ``allow_merge``) relabels every case
    (:func:`segbridge.harmonise.relabel`); the maps are read once, before any case runs, and
    a case's fingerprint holds their content, so an edited map redoes the cases.

    A broken manifest, or an output folder that cannot be used, raises InvalidInputError
    before anything is written. Every other problem is one case's error row.
    """
    from .batch_plan import refusals

    if memory_limit is not None:
        if scheduler != "local":
            raise InvalidInputError("--memory-limit sets the memory of the workers --scheduler "
                                    "local starts; an external cluster's workers use their own "
                                    "(dask worker --memory-limit)")
        memory_limit = memory_limit_value(memory_limit)
    relabel = None
    if maps:
        from .harmonise import UNMAPPED, load_maps

        if unmapped not in UNMAPPED:
            raise InvalidInputError(f"--unmapped must be one of {', '.join(UNMAPPED)}")
        relabel = {"maps": load_maps(maps), "unmapped": unmapped,
                   "allow_merge": bool(allow_merge)}
    parsed = read_manifest(manifest)
    out = _output_folder(outdir, Path(manifest))
    reserved = [out / RESULTS, out / f".{RESULTS}.tmp", out / JOURNAL]
    plans, why = refusals(parsed.cases, out, reserved)
    final: dict[int, dict] = {r["line"]: r for r in parsed.refused}
    for c in parsed.cases:
        if c["line"] in why:
            final[c["line"]] = refused_row(c["line"], c["case"], why[c["line"]])
    cases = [{**c, "target": str(plans[c["line"]].target),
              **({"relabel": relabel} if relabel else {})} for c in parsed.cases
             if c["line"] in plans]
    previous = _journal(out)
    web_dict = web.as_dict() if web is not None else None
    rows: dict[str, dict] = {}
    total = len(cases) + len(final)
    todo = []
    keys = {c["case"]: fingerprint(c) for c in cases}
    for c in cases:
        p = previous.get(c["case"])
        if p is not None and p.get("key") == keys[c["case"]]:
            rows[c["case"]] = {**{k: p.get(k, "") for k in RESULT_COLUMNS}, "status": "skipped",
                               "message": "outputs of an earlier run are complete",
                               "line": c["line"]}
        else:
            todo.append(c)
    if progress:
        progress(len(rows) + len(final), total)
    try:
        journal = open(out / JOURNAL, "a", encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"{out / JOURNAL}: cannot write the batch journal "
                                f"({exc.strerror or type(exc).__name__})") from None

    def done(row: dict) -> None:
        row["message"] = _one_line(row["message"])
        rows[row["case"]] = row
        sizes = {p: Path(p).stat().st_size for p in row["outputs"].split(";")
                 if p and Path(p).is_file()} if row["status"] == "ok" else {}
        journal.write(json.dumps({**row, "sizes": sizes, "key": keys[row["case"]]}) + "\n")
        journal.flush()
        if on_row:
            on_row(row)
        if progress:
            progress(len(rows) + len(final), total)

    try:
        if not todo:
            pass  # everything done before: no pool, no cluster
        elif scheduler:
            _run_dask(todo, str(out), web_dict, scheduler, workers, done, memory_limit)
        else:
            _run_local(todo, str(out), web_dict, workers, done)
    finally:
        journal.close()
    for c in cases:
        if c["case"] in rows:
            final[c["line"]] = rows[c["case"]]
    ordered = [final[n] for n in sorted(final)]
    return BatchResult(ordered, _write_results(out / RESULTS, ordered))


def _write_results(target: Path, rows: list[dict]) -> Path:
    """results.csv, written whole through a temporary name."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fp:
            w = csv.DictWriter(fp, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, target)
    except OSError as exc:
        raise InvalidInputError(f"{target}: cannot write the results "
                                f"({exc.strerror or type(exc).__name__})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target
