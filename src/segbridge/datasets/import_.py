"""``segbridge dataset import``: predicted label NIfTIs -> one SEG or RTSTRUCT per case.

A prediction is ``{case}.nii.gz`` (nnU-Net's naming; MONAI's ``{case}_seg.nii.gz`` is accepted
too). Which series a case lies on comes from the ``segbridge_cases.json`` the export wrote
(case id -> SeriesInstanceUID): ``--cases``, or that file in the predictions folder or its
parent. The series is looked up by its UID among the image series under ``--reference-root``
(:mod:`.studies`). Label values become segments with the names, codes and colours of the map
(:mod:`.labelspec`; a region-based nnU-Net model writes its predictions as these values, through
``regions_class_order``). Each output goes through :func:`segbridge.io.write` (validated,
atomic, never over an input); ``--push`` stores it over DICOMweb (STOW-RS).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..errors import InvalidInputError, SegbridgeError
from .cases import clashing, failure
from .export import CASES_FILE
from .labelspec import dataset_labels
from .nnunet import case_of_prediction


def read_cases_file(path: Path) -> dict[str, dict]:
    """Case id -> its record, from an export's ``segbridge_cases.json``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such cases file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"{path}: not a segbridge cases file ({exc})") from None
    cases = doc.get("cases") if isinstance(doc, dict) else None
    if not isinstance(cases, dict) or not all(isinstance(v, dict) and v.get("series")
                                              for v in cases.values()):
        raise InvalidInputError(f"{path}: not a segbridge cases file (no \"cases\" with "
                                "series UIDs)")
    return cases


def find_cases_file(predictions: Path, given: str | os.PathLike | None) -> Path:
    if given is not None:
        return Path(given)
    for folder in (predictions, predictions.parent):
        if (folder / CASES_FILE).is_file():
            return folder / CASES_FILE
    raise InvalidInputError(f"{predictions}: no {CASES_FILE} here or in the folder above; give "
                            "the export's file with --cases")


def import_case(case: dict, outdir: str, web: dict | None = None) -> dict:
    """One prediction -> SEG / RTSTRUCT (and STOW); a result row, also on failure."""
    from .. import io
    from ..errors import Report

    t0 = time.perf_counter()
    row = failure(case["case"], case["source"], "")
    try:
        if web:
            from ..web.client import WebOptions, set_default_options

            set_default_options(WebOptions(**web))
        report = Report()
        ref = io.load_reference(case["reference"], report=report)
        labels = case["labels"].label_map()
        seg = io.read(case["source"], reference=ref, labels=labels, report=report,
                      resample=case.get("resample", False))
        if not seg.segments:
            raise InvalidInputError(f"{case['source']}: no label in the prediction")
        unknown = sorted(n for n in seg.numbers if n not in labels.by_value)
        if unknown:  # a name for it would be a guess
            raise InvalidInputError(f"{case['source']}: label value(s) {unknown[:10]} are not "
                                    "in the dataset's labels (--labels)")
        target = Path(outdir) / f"{case['case']}.dcm"
        written = io.write(seg, target, reference=ref, to=case["to"], profile=case["profile"],
                           report=report, protect=[case["source"]])
        messages = [f"warning: {w}" for w in report.warnings]
        if case.get("push"):
            from ..web.transfer import push_written

            messages.append(push_written(written, case["push"]))
        row.update(status="ok", message="; ".join(messages),
                   outputs=[str(p) for p in written], segments=len(seg.segments))
    except SegbridgeError as exc:
        row["message"] = str(exc)
    except OSError as exc:
        row["message"] = f"{exc.filename or case['source']}: {exc.strerror or type(exc).__name__}"
    except Exception as exc:  # a bug must not stop the other cases
        row["message"] = f"internal error: {type(exc).__name__}: {exc}"
    row["message"] = " ".join(str(row["message"]).split())
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def import_predictions(predictions: str | os.PathLike, out: str | os.PathLike, *,
                       reference_root: str | os.PathLike, labels, to: str = "seg",
                       cases_file: str | os.PathLike | None = None, push: str | None = None,
                       profile: str = "ohif", workers: int = 1, scheduler: str | None = None,
                       web: dict | None = None, resample: bool = False,
                       on_row=None) -> list[dict]:
    """Every prediction in ``predictions`` -> ``out/{case}.dcm``; result rows (one per file).

    Two predictions of one case (``{case}.nii.gz`` and ``{case}_seg.nii.gz``) both fail: one
    would overwrite the other. ``resample`` allows nearest-neighbour resampling of a
    prediction onto its reference grid. ``out`` is created only when a case is written.

    Raises
    ------
    InvalidInputError
        A bad folder, map or cases file (before anything is written).
    """
    from ..batch import run_parallel
    from .studies import scan

    pred = Path(predictions)
    if not pred.is_dir():
        raise InvalidInputError(f"{pred}: no such folder of predictions")
    if to not in ("seg", "rtstruct"):
        raise InvalidInputError(f"--to must be seg or rtstruct, not {to!r}")
    spec = dataset_labels(labels)
    known = read_cases_file(find_cases_file(pred, cases_file))
    files = sorted(p for p in pred.iterdir() if p.is_file() and case_of_prediction(p.name))
    if not files:
        raise InvalidInputError(f"{pred}: no .nii.gz / .nii predictions")
    root = Path(reference_root)
    if not root.is_dir():
        raise InvalidInputError(f"{root}: no such folder (--reference-root)")
    outdir = Path(out)
    if outdir.exists() and not outdir.is_dir():
        raise InvalidInputError(f"{outdir}: not a folder (-o)")
    index = scan(root)
    rows, jobs = [], []
    for f in files:
        case = case_of_prediction(f.name)
        if case not in known and case.endswith("_seg") and case[:-4] in known:
            case = case[:-4]  # MONAI's SaveImage postfix
        if case not in known:
            rows.append(failure(case, str(f), f"case {case!r} is not in the cases file"))
            continue
        uid = known[case]["series"]
        if uid not in index.images:
            rows.append(failure(case, str(f), f"series {uid} not found under {root}"))
            continue
        jobs.append({"case": case, "source": str(f), "labels": spec, "to": to, "push": push,
                     "profile": profile, "reference": [str(p) for p in index.images[uid]],
                     "resample": resample})
    jobs, clashes = clashing(jobs, lambda j: j["case"])
    for case, same in clashes.items():  # each would be written to {case}.dcm
        names = ", ".join(Path(j["source"]).name for j in same)
        rows += [failure(case, j["source"], f"case {case!r} has {len(same)} predictions "
                                            f"({names}); keep one") for j in same]
    made = not outdir.exists()
    if jobs:
        outdir.mkdir(parents=True, exist_ok=True)

    def done(row: dict) -> None:
        rows.append(row)
        if on_row:
            on_row(row)

    for r in rows:
        if on_row:
            on_row(r)
    if jobs:
        run_parallel(import_case, jobs, str(outdir), done, workers=workers,
                     scheduler=scheduler, web=web)
        if made and not any(outdir.iterdir()):
            outdir.rmdir()  # every case failed: no empty folder left behind
    return sorted(rows, key=lambda r: r["case"])
