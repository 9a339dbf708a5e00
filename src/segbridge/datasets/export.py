"""``segbridge dataset export``: DICOM studies with SEG / RTSTRUCT -> nnU-Net v2 or MONAI dataset.

Per case (:func:`export_case`, run by batch's runner on processes or Dask): the reference
series is read, the segmentation read onto its grid (exactly when it lies on the image lattice;
otherwise nearest neighbour, with a warning), renamed by the map and painted into one label
image (:mod:`.labelspec`); the image is written as NIfTI on its own grid (int16 when the
rescale gives integers in range, else float32) and the labels with the same header geometry.

The dataset is built in a hidden folder beside ``-o`` and renamed into place when whole: a bad
map, manifest or folder, or a run that is stopped, leaves nothing. A case that fails is left out
and gets one line in ``segbridge_report.txt`` (and in the result); the others finish.
``segbridge_cases.json`` maps each case id to its series (for ``dataset import``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import GeometryMismatchError, InvalidInputError, Report, SegbridgeError
from . import monai, nnunet
from .cases import collect, failure, folds
from .labelspec import DatasetLabels, dataset_labels, label_image

FORMATS = ("nnunet", "monai")
CASES_FILE = "segbridge_cases.json"
REPORT_FILE = "segbridge_report.txt"


def image_volume(ref) -> np.ndarray:
    """The reference image in real-world units: int16 when every slice's rescale maps the
    stored integers to integers within int16 exactly, else float32."""
    stored, slope, inter = ref.stored_pixels()
    if np.issubdtype(stored.dtype, np.integer) and np.all(slope == np.round(slope)) and \
            np.all(inter == np.round(inter)):
        s, i = slope.astype(np.int64), inter.astype(np.int64)
        lo, hi = int(stored.min(initial=0)), int(stored.max(initial=0))
        ends = [lo * s + i, hi * s + i]
        if min(e.min() for e in ends) >= -32768 and max(e.max() for e in ends) <= 32767:
            out = np.empty(stored.shape, np.int16)
            for k in range(len(out)):
                out[k] = stored[k].astype(np.int64) * s[k] + i[k]
            return out
    return ref.pixels().astype(np.float32, copy=False)


def _read_on_grid(case: dict, ref, report: Report):
    from .. import io

    kw = dict(reference=ref, report=report, contour_fill=case.get("contour_fill") or "centre")
    try:
        return io.read(case["inputs"], **kw)
    except GeometryMismatchError as exc:
        report.warn(f"{Path(case['inputs'][0]).name} is not on the image lattice ({exc}); "
                    "resampled with nearest neighbour")
        return io.read(case["inputs"], resample=True, **kw)


def _names(fmt: str, case: str) -> tuple[str, str]:
    if fmt == "nnunet":
        return nnunet.image_name(case), nnunet.label_name(case)
    return monai.image_name(case), monai.label_name(case)


def export_case(case: dict, outdir: str, web: dict | None = None) -> dict:
    """Export one case into ``outdir`` (the dataset folder being built); a result row, also
    when the case fails (then nothing of it is left in ``outdir``)."""
    from ..formats.nifti import write_volumes
    from ..manifest import truthy
    from ..outputs import tmp_name
    from ..reference import load_reference

    t0 = time.perf_counter()
    row = failure(case["case"], case["source"], "")
    report = Report()
    image_name, label_name = _names(case["format"], case["case"])
    targets = [Path(outdir) / "imagesTr" / image_name, Path(outdir) / "labelsTr" / label_name]
    temps = [tmp_name(t) for t in targets]
    try:
        if web:
            from ..web.client import WebOptions, set_default_options

            set_default_options(WebOptions(**web))
        ref = load_reference(case["reference"], series_uid=case.get("series") or None,
                             assign_uids=truthy(case.get("assign_uids", "")), report=report)
        if not ref.grid.is_regular:
            raise InvalidInputError(f"series {ref.source.series_instance_uid}: slices are not "
                                    "evenly spaced; NIfTI needs a regular grid (not resampled)")
        seg = _read_on_grid(case, ref, report)
        labels = label_image(seg, case["labels"], report=report,
                             what=Path(case["inputs"][0]).name)
        image = image_volume(ref)
        write_volumes([labels], ref.grid, temps[1], labels.dtype, "segbridge labels")
        write_volumes([image], ref.grid, temps[0], image.dtype, "segbridge image")
        for tmp, target in zip(temps, targets, strict=True):
            os.replace(tmp, target)
        present = sorted(int(v) for v in np.unique(labels) if v)
        row.update(status="ok", message="", image=str(targets[0].relative_to(outdir)),
                   label=str(targets[1].relative_to(outdir)), labels_present=present,
                   series=ref.source.series_instance_uid, study=ref.source.study_instance_uid,
                   modality=ref.modality or "", image_dtype=str(image.dtype),
                   reference=case["reference"] if isinstance(case["reference"], str)
                   else os.path.commonpath(case["reference"]),
                   warnings=list(report.warnings), notes=list(report.notes))
    except SegbridgeError as exc:
        row["message"] = str(exc)
    except OSError as exc:
        row["message"] = f"{exc.filename or outdir}: {exc.strerror or type(exc).__name__}"
    except MemoryError:
        row["message"] = "out of memory"
    except Exception as exc:  # a bug must not stop the other cases
        row["message"] = f"internal error: {type(exc).__name__}: {exc}"
    finally:
        for t in temps:
            t.unlink(missing_ok=True)
    if row["status"] != "ok":
        for t in targets:
            t.unlink(missing_ok=True)
    row["message"] = " ".join(str(row["message"]).split())
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


@dataclass
class ExportResult:
    folder: Path
    rows: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "ok"]

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != "ok"]


def _new_folder(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInputError(f"{out}: exists; a dataset is written into a new (or empty) "
                                "folder")
    if not out.parent.is_dir():
        raise InvalidInputError(f"{out}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InvalidInputError(f"{out}: folder {out.parent} is not writable")
    return out.parent / f".{out.name}.{os.getpid()}.tmp"


def _write_json(path: Path, doc) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def export_dataset(source: str | os.PathLike, out: str | os.PathLike, *, format: str = "nnunet",
                   labels, split: int = 0, workers: int = 1, scheduler: str | None = None,
                   web: dict | None = None, memory_limit: str | None = None,
                   channel_name: str | None = None, allow_merge: bool = False,
                   on_row=None) -> ExportResult:
    """Export a manifest or a folder of studies as a dataset in ``out`` (a new folder).

    Parameters
    ----------
    source
        A batch manifest (CSV) or a folder of DICOM studies (:mod:`.cases`).
    out
        The dataset folder; for nnU-Net named ``DatasetXXX_Name``. Must not exist (or be empty).
    format
        ``"nnunet"`` or ``"monai"``.
    labels
        Relabel map(s) naming every target with its number (:mod:`.labelspec`).
    split
        Number of folds (0: none; else at least 2).
    workers, scheduler, web, memory_limit
        As for ``batch``: local processes, or Dask.
    channel_name
        The image channel's name (default: the series' Modality, e.g. ``CT``).
    allow_merge
        Merge segments that the map sends to one target even when no rule says merge=yes.
    on_row
        Called with each case's result row as it ends.

    Raises
    ------
    InvalidInputError
        A bad map, source, format or output folder, or no case exported (nothing written).
    """
    from ..batch import run_parallel

    if format not in FORMATS:
        raise InvalidInputError(f"--format must be one of {', '.join(FORMATS)}, not {format!r}")
    out = Path(out)
    if format == "nnunet":
        nnunet.check_folder_name(out.name)
    spec: DatasetLabels = dataset_labels(labels, allow_merge=allow_merge)
    if format == "nnunet":
        nnunet.check_labels(spec)
    if split < 0 or split == 1:
        raise InvalidInputError(f"--split must be 0 (no folds) or a number of folds of at "
                                f"least 2, not {split}")
    staging = _new_folder(out)
    cases, refused = collect(source)
    rows: dict[str, dict] = {}
    done_rows: list[dict] = []

    def done(row: dict) -> None:
        done_rows.append(row)
        if on_row:
            on_row(row)

    try:
        (staging / "imagesTr").mkdir(parents=True)
        (staging / "labelsTr").mkdir()
        jobs = [{**c, "format": format, "labels": spec} for c in cases]
        run_parallel(export_case, jobs, str(staging), done, workers=workers,
                     scheduler=scheduler, web=web, memory_limit=memory_limit)
        rows = {r["case"]: r for r in done_rows}
        ok = [r for r in rows.values() if r["status"] == "ok"]
        channel = channel_name or (Counter(r["modality"] for r in ok).most_common(1)[0][0]
                                   if ok else "")
        for r in ok:  # one channel per dataset: another modality is left out
            if not channel_name and r["modality"] != channel:
                for rel in (r["image"], r["label"]):
                    (staging / rel).unlink(missing_ok=True)
                r.update(status="error", message=f"modality {r['modality']}, but the dataset's "
                                                 f"channel is {channel}")
        ok = sorted((r for r in rows.values() if r["status"] == "ok"), key=lambda r: r["case"])
        if not ok:
            failed = [*rows.values(), *refused]  # the cases' own reasons first
            first = failed[0] if failed else None
            why = f" ({len(failed)} left out; first: {first['case'] or first['source']}: " \
                f"{first['message']})" if first else ""
            raise InvalidInputError(f"{source}: no case could be exported{why}")
        ids = [r["case"] for r in ok]
        fold_of = folds(ids, split)
        chans = [channel or "image"]
        if format == "nnunet":
            _write_json(staging / "dataset.json",
                        nnunet.dataset_json(spec, chans, len(ok), name=out.name,
                                            description=f"exported by segbridge from {source}"))
            if fold_of:
                _write_json(staging / "splits_final.json", nnunet.splits_final(fold_of, split))
        else:
            _write_json(staging / monai.DATALIST,
                        monai.datalist(spec, chans, ids, fold_of, name=out.name,
                                       description=f"exported by segbridge from {source}"))
        cases_doc = {"format": format, "source": str(source), "channel_names": chans,
                     "cases": {r["case"]: {k: r[k] for k in (
                         "series", "study", "reference", "source", "image", "label",
                         "labels_present", "image_dtype", "warnings", "notes")}
                         | ({"fold": fold_of[r["case"]]} if fold_of else {}) for r in ok}}
        _write_json(staging / CASES_FILE, cases_doc)
        failed = [*refused, *(r for r in rows.values() if r["status"] != "ok")]
        lines = [f"{r['case'] or '-'}\t{r['source']}\t{r['message']}" for r in failed]
        (staging / REPORT_FILE).write_text("".join(line + "\n" for line in lines),
                                           encoding="utf-8")
        if out.exists():
            out.rmdir()  # empty (checked): replaced by the whole dataset
        os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, [*refused, *sorted(rows.values(), key=lambda r: r["case"])])
