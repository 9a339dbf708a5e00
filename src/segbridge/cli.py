"""The ``segbridge`` command line: a thin shell over the library.

Every user mistake ends in one line on stderr naming the file and the problem and a non-zero
exit code (1 for bad input, 2 for bad usage); tracebacks only with SEGBRIDGE_DEBUG=1.
"""

from __future__ import annotations

from . import signals

signals.install()  # before the imports below, which take a while (E402 is off for this file)

import json
import os
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .errors import SegbridgeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Exact, fast conversion of medical-image segmentations "
                       "(DICOM SEG, NIfTI, NRRD, Slicer seg.nrrd).")


class SegType(str, Enum):
    auto = "auto"
    binary = "binary"
    fractional = "fractional"
    labelmap = "labelmap"


class ContourFill(str, Enum):
    centre = "centre"
    rt_utils = "rt-utils"


class ProfileName(str, Enum):
    ohif = "ohif"
    slicer = "slicer"
    archive = "archive"
    dense = "dense"


class CompressionName(str, Enum):
    none = "none"
    rle = "rle"
    jpegls = "jpegls"
    jpeg2000 = "jpeg2000"
    deflate = "deflate"
    deflate_frame = "deflate-frame"


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped output is read by people in logs and files: do not squeeze tables to 80 columns
    width = None if stream.isatty() else 160
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


@contextmanager
def _progress(label: str):
    """A rich progress bar on an interactive terminal, else nothing (and no rich import)."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_console(stderr=True)) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _size(path: Path) -> str:
    n = path.stat().st_size
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


ReferenceOpt = Annotated[str | None, typer.Option(
    "--reference", "-r", help="Source image series: folder, file, multi-frame image, or a "
                              "DICOMweb series URL (.../studies/<uid>/series/<uid>).")]
UserOpt = Annotated[str | None, typer.Option(
    "--user", help="DICOMweb user for HTTP basic auth (or SEGBRIDGE_USER).")]
PasswordOpt = Annotated[str | None, typer.Option(
    "--password", help="DICOMweb password (or SEGBRIDGE_PASSWORD, which keeps it out of the "
                       "process list).")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", help="DICOMweb bearer token (or SEGBRIDGE_TOKEN).")]
CaOpt = Annotated[str | None, typer.Option(
    "--ca-bundle", help="CA certificates to trust for https (or SEGBRIDGE_CA_BUNDLE); "
                        "verification is always on.")]
TimeoutOpt = Annotated[float | None, typer.Option(
    "--timeout", help="Seconds to wait for each DICOMweb request (default 30, or "
                      "SEGBRIDGE_TIMEOUT).")]


def _web(user=None, password=None, token=None, ca_bundle=None, timeout=None):
    """Web options from flags and environment, made the default for this command."""
    from .web.client import WebOptions, set_default_options

    options = WebOptions.from_env(user=user, password=password, token=token,
                                  ca_bundle=ca_bundle, timeout=timeout)
    set_default_options(options)
    return options
SeriesOpt = Annotated[str | None, typer.Option(
    "--series", help="SeriesInstanceUID to use when the reference folder holds several.")]


class Unmapped(str, Enum):
    keep = "keep"
    drop = "drop"
    error = "error"


MapOpt = Annotated[list[str] | None, typer.Option(
    "--map", help="Relabel map: CSV or JSON rules (source names or patterns -> target name, "
                  "number, codes, colour), or 'tg263' for the AAPM TG-263 names; repeat it to "
                  "layer maps (a later map overrides the earlier ones). See docs/relabel.md.")]
UnmappedOpt = Annotated[Unmapped, typer.Option(
    "--unmapped", help="Segments no rule of --map names: keep them as they are (reported), "
                       "drop them, or stop with an error.")]
SplitOverlapsOpt = Annotated[bool | None, typer.Option(
    "--split-overlaps/--no-split-overlaps",
    help="Write overlapping segments as several SEG objects (default: the profile's).")]
AllowMergeOpt = Annotated[bool, typer.Option(
    "--allow-merge", help="Merge segments that the map sends to one target even when no rule "
                          "says merge=yes (each merge is reported).")]


def _map_files(maps: list[str] | None) -> list[Path]:
    """The map files among --map values (outputs may never replace them)."""
    return [Path(m) for m in maps or () if Path(m).is_file()]


@app.command()
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Segmentation file(s): .dcm SEG, .nii, "
                                                 ".nii.gz, .nrrd, .seg.nrrd; or one folder of "
                                                 "mask NIfTIs (TotalSegmentator's output).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Output file; the suffix picks the format (.dcm, .nii.gz, .nrrd, "
                               ".seg.nrrd).")] = None,
    reference: ReferenceOpt = None,
    series: SeriesOpt = None,
    meta: Annotated[Path | None, typer.Option(
        "--meta", help="dcmqi-style JSON segment metadata.")] = None,
    labels: Annotated[str | None, typer.Option(
        "--labels", help="Label map, CSV or JSON: label value or file name -> name, codes, "
                         "colour; 'totalsegmentator' for its v2 class map (--ml output).")
    ] = None,
    keep_empty: Annotated[bool, typer.Option(
        "--keep-empty", help="Keep the empty masks of a mask folder as empty segments.")] = False,
    type: Annotated[SegType, typer.Option("--type", help="SEG type to write.")] = SegType.auto,
    profile: Annotated[ProfileName, typer.Option(
        "--profile", help="Target consumer of a DICOM SEG.")] = ProfileName.ohif,
    compression: Annotated[CompressionName | None, typer.Option(
        "--compression", help="Pixel encoding of a DICOM SEG (default: the profile's).")] = None,
    split_overlaps: SplitOverlapsOpt = None,
    fractional: Annotated[bool, typer.Option(
        "--fractional", help="Read volume inputs as probabilities (0..1).")] = False,
    resample: Annotated[bool, typer.Option(
        "--resample", help="Allow nearest-neighbour resampling onto the reference grid.")] = False,
    contour_fill: Annotated[ContourFill, typer.Option(
        "--contour-fill", help="How RTSTRUCT contours become voxels: centre (a voxel is in when "
                               "its centre is inside) or rt-utils (rt-utils' masks: vertices "
                               "rounded to pixels, outline pixels in).")] = ContourFill.centre,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    allow_outside: Annotated[bool, typer.Option(
        "--allow-outside-data", help="Let a detached NRRD header (.nhdr) name a data file "
                                     "outside its own folder, or a mask folder hold symbolic "
                                     "links out of it.")] = False,
    assign_uids: Annotated[bool, typer.Option(
        "--assign-uids", help="Give reference images with blank study/series UIDs new ones "
                              "(a corrected copy is written next to the output).")] = False,
    series_description: Annotated[str | None, typer.Option("--series-description")] = None,
    series_number: Annotated[int | None, typer.Option("--series-number")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Write even when the output fails validation for the profile "
                        "(the findings are still printed).")] = False,
    to: Annotated[str | None, typer.Option(
        "--to", help="What a .dcm output is: seg (default) or rtstruct. A .dcm file name here "
                     "writes an RTSTRUCT to it (then -o is not needed).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    push_url: Annotated[str | None, typer.Option(
        "--push", help="Store the DICOM output on this DICOMweb server (STOW-RS) right away.")
    ] = None,
    maps: MapOpt = None,
    unmapped: UnmappedOpt = Unmapped.keep,
    allow_merge: AllowMergeOpt = False,
    user: UserOpt = None, password: PasswordOpt = None, token: TokenOpt = None,
    ca_bundle: CaOpt = None, timeout: TimeoutOpt = None,
    tiled: Annotated[str | None, typer.Option(
        "--tiled", help="Slide SEG frames: sparse (TILED_SPARSE, empty tiles left out, the "
                        "default) or full (TILED_FULL, every tile).")] = None,
    pyramid: Annotated[str | None, typer.Option(
        "--pyramid", help="Slide SEG: also write levels downsampled by these factors, e.g. "
                          "2,4,8 (NAME-2.dcm, ...; one series), or 'levels' for every level "
                          "of a --reference folder.")] = None,
    palette: Annotated[bool, typer.Option(
        "--palette", help="Slide LABELMAP SEG in PALETTE COLOR (segment colours).")] = False,
) -> None:
    """Convert segmentations between DICOM SEG, RTSTRUCT, NIfTI, NRRD and Slicer seg.nrrd,
    and slide label images (.tif / .tiff / .npy) <-> slide-microscopy SEGs.

    A DICOM SEG output is validated against the profile before it is put in place; an
    error-level finding stops the conversion unless --force.
    """
    from . import io
    from .errors import InvalidInputError, Report
    from .outputs import files_read

    _web(user, password, token, ca_bundle, timeout)

    kind = "seg"
    if to is not None:
        if to.lower() in ("seg", "rtstruct"):
            kind = to.lower()
        elif to.lower().endswith(".dcm"):
            kind = "rtstruct"
            if output is not None and output != Path(to):
                raise InvalidInputError(f"--to {to} and -o {output} name two outputs")
            output = Path(to)
        else:
            raise InvalidInputError(f"--to must be seg, rtstruct or an RTSTRUCT file name "
                                    f"ending in .dcm, got {to!r}")
    if output is None:
        raise InvalidInputError("no output: give -o FILE (or --to NAME.dcm for an RTSTRUCT)")
    if _slide_convert(inputs, output, reference, type.value, tiled, compression, palette,
                      pyramid, series_description, series_number, strict, as_json, labels):
        return
    if push_url is not None and io.format_of(output) != "dicom":
        raise InvalidInputError(f"--push stores DICOM; {output} is not a .dcm output")
    report = Report(strict=strict)
    # --type fractional alone: float volumes are probabilities, integer ones labels
    frac = True if fractional else "auto" if type == SegType.fractional else None
    ref = io.load_reference(reference, series_uid=series, assign_uids=assign_uids,
                            report=report)
    seg = io.read(inputs, reference=ref, meta=meta, resample=resample, strict=strict,
                  fractional=frac, report=report,
                  contour_fill=contour_fill.value, allow_outside=allow_outside,
                  labels=labels, keep_empty=keep_empty)
    protect = files_read(inputs, meta=meta, reference=ref) + _map_files(maps) + (
        [Path(labels)] if labels and Path(labels).is_file() else [])
    if maps:
        from .harmonise import load_maps, relabel

        seg = relabel(seg, load_maps(maps), unmapped=unmapped.value, allow_merge=allow_merge,
                      report=report, what=_names(inputs))
    with _progress("encoding frames") as progress:
        written = io.write(seg, output, type=type.value, profile=profile.value,
                           compression=compression.value if compression else None,
                           split_overlaps=split_overlaps, series_description=series_description,
                           series_number=series_number, resample=resample, report=report,
                           progress=progress, reference=ref, force=force, to=kind,
                           protect=protect)
    if ref is not None and ref.assigned_uids:
        from .series import write_reference_copy

        copy_dir = output.parent / f"{output.name.split('.')[0]}-reference"
        written.append(write_reference_copy(ref, copy_dir))
    pushed = None
    if push_url is not None:
        from .web.transfer import push as do_push

        study = ref.source.study_instance_uid if ref is not None else None
        try:
            pushed = do_push([p for p in written if p.is_file() and p.suffix == ".dcm"],
                             push_url, study=study)
        except SegbridgeError as exc:
            kept = ", ".join(str(p) for p in written)
            raise exc.__class__(f"{exc}; the local output was kept: {kept}") from None
    if as_json:
        print(json.dumps({"written": [str(p) for p in written],
                          "segments": len(seg.segments),
                          "pushed": None if pushed is None else {
                              "stored": pushed.stored, "failed": pushed.failed},
                          "notes": report.notes, "warnings": report.warnings}, indent=2))
        if pushed is not None and not pushed.ok:
            raise typer.Exit(1)
        return
    _print_written(inputs, seg, report, written)
    if pushed is not None:
        _print_push(pushed, push_url)
        if not pushed.ok:
            print(f"the local output was kept: {', '.join(str(p) for p in written)}",
                  file=sys.stderr)
            raise typer.Exit(1)


def _slide_convert(inputs, output, reference, seg_type, tiled, compression, palette, pyramid,
                   series_description, series_number, strict, as_json, labels) -> bool:
    """Run a slide conversion when an input or the output is a slide; False otherwise."""
    from .slide.detect import is_slide_job

    if not is_slide_job(inputs, output):
        return False
    from .errors import InvalidInputError, Report
    from .slide.convert import convert_slide

    factors = None
    if pyramid and pyramid.strip().lower() == "levels":
        factors = "levels"
    elif pyramid:
        try:
            factors = [float(f) for f in pyramid.split(",") if f.strip()]
        except ValueError:
            raise InvalidInputError(f"--pyramid takes factors like 2,4,8 or 'levels', got "
                                    f"{pyramid!r}") from None
    report = Report(strict=strict)
    sseg, written = convert_slide(
        list(inputs), output, reference, seg_type=None if seg_type == "auto" else seg_type,
        tiled=tiled or "sparse", compression=compression.value if compression else None,
        palette=palette, pyramid=factors, series_description=series_description,
        series_number=series_number, report=report, labels=labels)
    if as_json:
        print(json.dumps({"written": [str(p) for p in written], "segments": len(sseg.segments),
                          "notes": report.notes, "warnings": report.warnings}, indent=2))
    else:
        for line in report.warnings:
            print(f"warning: {line}", file=sys.stderr)
        for line in report.notes:
            print(f"note: {line}", file=sys.stderr)
        print(f"wrote {', '.join(str(p) for p in written)} ({len(sseg.segments)} segments, "
              f"{sseg.seg_type})")
    return True


@app.command("relabel")
def relabel_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="Segmentation file(s) (as for convert).")],
    maps: MapOpt = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Output file (the suffix picks the format); without it the "
                               "plan is printed and nothing is written.")] = None,
    reference: ReferenceOpt = None,
    series: SeriesOpt = None,
    unmapped: UnmappedOpt = Unmapped.keep,
    allow_merge: AllowMergeOpt = False,
    type: Annotated[SegType, typer.Option("--type", help="SEG type to write.")] = SegType.auto,
    profile: Annotated[ProfileName, typer.Option(
        "--profile", help="Target consumer of a DICOM SEG.")] = ProfileName.ohif,
    contour_fill: Annotated[ContourFill, typer.Option(
        "--contour-fill", help="How RTSTRUCT contours become voxels (as for convert).")
    ] = ContourFill.centre,
    to: Annotated[str | None, typer.Option(
        "--to", help="What a .dcm output is: seg (default) or rtstruct.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Write even when the output fails validation for the profile.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Rename, merge and renumber segments by a map (CSV / JSON rules, or tg263).

    Ambiguous names (claimed by two rules) stop it; segments are merged only when the map
    (merge=yes) or --allow-merge says so. Without -o, prints what each segment would become.
    """
    from .errors import InvalidInputError

    if not maps:
        raise InvalidInputError("relabel needs a map: --map FILE.csv|FILE.json or --map tg263")
    if output is not None:
        convert(inputs, output=output, reference=reference, series=series, type=type,
                profile=profile, contour_fill=contour_fill, strict=strict, force=force, to=to,
                as_json=as_json, maps=maps, unmapped=unmapped, allow_merge=allow_merge)
        return
    from . import io
    from .errors import Report
    from .harmonise import load_maps, plan_relabel

    layers = load_maps(maps)  # a bad map is reported before the input is read
    report = Report(strict=strict)
    ref = io.load_reference(reference, series_uid=series, report=report)
    seg = io.read(inputs, reference=ref, strict=strict, report=report,
                  contour_fill=contour_fill.value)
    plan = plan_relabel(seg.segments, layers, unmapped=unmapped.value, allow_merge=allow_merge,
                        what=_names(inputs))
    if as_json:
        print(json.dumps({"maps": [m.source for m in layers], "segments": plan.as_dicts(),
                          "unmapped": plan.unmapped,
                          "merges": {t: [r.name for r in g] for t, g in plan.merges.items()}},
                         indent=2))
        return
    for r in plan.rows:
        to_name = {"mapped": f"-> {r.target} ({r.new_number})",
                   "merged": f"-> {r.target} ({r.new_number}, merged)",
                   "unmapped": f"unmapped, kept ({r.new_number})",
                   "dropped": "unmapped, dropped"}[r.status]
        print(f"{r.number:>5} {r.name!r:32} {to_name}" + (f"  [{r.rule}]" if r.rule else ""))
    print(f"{len(plan.rows)} segments: {sum(r.status == 'mapped' for r in plan.rows)} mapped, "
          f"{sum(r.status == 'merged' for r in plan.rows)} merged, {len(plan.unmapped)} "
          "unmapped; nothing written (give -o to write)")


def _print_written(inputs: list[Path], seg, report, written: list[Path]) -> None:
    """What a command read and wrote, its notes and warnings (plain print: the summary needs
    no styling, and rich costs start-up time on every call)."""
    print(f"read {', '.join(p.name for p in inputs)}: {len(seg.segments)} segments, "
          f"grid {seg.grid.describe()}")
    for n in report.notes:
        print(f"note: {n}")
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for p in written:
        print(f"wrote {p} ({_size(p) if p.is_file() else 'folder'})")


def _print_push(result, url: str) -> None:
    from .web.client import public

    print(f"stored {len(result.stored)} instance(s) on {public(url)}")
    for file, uid, why in result.warnings:
        print(f"warning: {file or uid}: stored with a warning: {why}", file=sys.stderr)
    for file, uid, why in result.failed:
        print(f"refused: {file or uid}{f' ({uid})' if uid and file else ''}: {why}",
              file=sys.stderr)


@app.command()
def pull(
    url: Annotated[str, typer.Argument(help="DICOMweb root (http://host/dicom-web), or a "
                                            ".../studies/<uid>\\[/series/<uid>] URL.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to fill "
                                         "(one sub-folder per series).")],
    study: Annotated[str | None, typer.Option("--study", help="StudyInstanceUID.")] = None,
    series: Annotated[str | None, typer.Option("--series", help="Only this series.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Instances fetched at once.")] = 4,
    user: UserOpt = None, password: PasswordOpt = None, token: TokenOpt = None,
    ca_bundle: CaOpt = None, timeout: TimeoutOpt = None,
) -> None:
    """Fetch a study or series (QIDO-RS + WADO-RS); a rerun resumes where one stopped."""
    from .errors import InvalidInputError
    from .web.client import split_series_url
    from .web.transfer import pull as do_pull

    options = _web(user, password, token, ca_bundle, timeout)
    root, url_study, url_series = split_series_url(url)
    study, series = study or url_study, series or url_series
    if not study:
        raise InvalidInputError("which study? give --study UID (or a .../studies/<uid> URL)")
    with _progress("pulling") as progress:
        result = do_pull(root, study, output, series=series, options=options, workers=workers,
                         progress=progress)
    print(f"pulled {len(result.fetched)} instance(s) ({result.bytes / 1e6:.1f} MB) of "
          f"{len(result.series)} series into {output}"
          + (f"; {len(result.skipped)} already there" if result.skipped else ""))


@app.command()
def push(
    paths: Annotated[list[Path], typer.Argument(help="DICOM files or folders.")],
    url: Annotated[str, typer.Option("--url", help="DICOMweb root (http://host/dicom-web).")],
    batch: Annotated[int, typer.Option("--batch", help="Instances per STOW-RS request.")] = 50,
    study: Annotated[str | None, typer.Option(
        "--study", help="Store only into this study (the server refuses instances of "
                        "others).")] = None,
    workers: Annotated[int, typer.Option("--workers", help="STOW-RS requests at once.")] = 2,
    user: UserOpt = None, password: PasswordOpt = None, token: TokenOpt = None,
    ca_bundle: CaOpt = None, timeout: TimeoutOpt = None,
) -> None:
    """Store DICOM files (STOW-RS); exit 1 if the server refused any instance."""
    from .web.transfer import push as do_push

    options = _web(user, password, token, ca_bundle, timeout)
    with _progress("pushing") as progress:
        result = do_push(paths, url, options=options, study=study, batch_size=max(1, batch),
                         workers=max(1, workers),
                         progress=progress)
    if result.skipped:
        print(f"skipped {len(result.skipped)} file(s) that are not DICOM ({result.skipped[0]}"
              f"{', ...' if len(result.skipped) > 1 else ''})", file=sys.stderr)
    _print_push(result, url)
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A segmentation file.")],
    reference: ReferenceOpt = None,
    series: SeriesOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Describe a segmentation: type, encoding, grid, segments, overlap, references."""
    from .describe import describe

    data = describe(file, reference=reference, series_uid=series)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    from .describe import print_description

    print_description(data, _console())


class ValidationProfile(str, Enum):
    standard = "standard"
    ohif = "ohif"
    slicer = "slicer"
    archive = "archive"  # writer profiles: checked as the standard (validate maps them)
    dense = "dense"


@app.command("validate")
def validate_cmd(
    file: Annotated[Path, typer.Argument(help="A DICOM SEG or RTSTRUCT file.")],
    reference: ReferenceOpt = None,
    series: SeriesOpt = None,
    profile: Annotated[ValidationProfile, typer.Option(
        "--profile", help="standard, or also what OHIF / Slicer need.")] = (
        ValidationProfile.standard),
    strict: Annotated[bool, typer.Option("--strict", help="Warnings count as errors.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print findings as JSON.")] = False,
) -> None:
    """Check a SEG or RTSTRUCT against the standard and real viewers; exit 1 on errors."""
    from .validate import validate

    result = validate(file, reference=reference, profile=profile.value, series_uid=series)
    failed = bool(result.errors) or (strict and bool(result.warnings))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        for f in result.findings:
            print(f"{file}: {f.line()}")
            if f.severity != "info":
                print(f"        fix: {f.hint}  [{f.source}]")
        skipped = f"; skipped {', '.join(result.skipped)} (need --reference)" if \
            result.skipped and reference is None else ""
        print(f"{file}: {result.kind}, profile {result.profile}: {len(result.errors)} errors, "
              f"{len(result.warnings)} warnings{skipped}")
    if failed:
        raise typer.Exit(1)


@app.command()
def repair(
    file: Annotated[Path, typer.Argument(help="The DICOM SEG to repair.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Repaired SEG (NAME-2.dcm... "
                                         "when split).")],
    reference: ReferenceOpt = None,
    series: SeriesOpt = None,
    profile: Annotated[ProfileName, typer.Option(
        "--profile", help="Consumer the result must satisfy.")] = ProfileName.ohif,
    compression: Annotated[CompressionName | None, typer.Option(
        "--compression", help="Pixel encoding (default: keep it if the profile accepts it).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fix what can be fixed without guessing, validate the result, report every change."""
    from . import io
    from .repair import repair as do_repair

    ref = io.load_reference(reference, series_uid=series)
    result = do_repair(file, output, reference=ref, profile=profile.value,
                       compression=compression.value if compression else None)
    if as_json:
        print(json.dumps({"ok": result.ok, "written": [str(p) for p in result.written],
                          "changes": result.changes, "unfixable": result.unfixable,
                          "before": result.before.to_dict(),
                          "after": [a.to_dict() for a in result.after]}, indent=2))
    else:
        print(f"{file}: {len(result.before.errors)} errors, {len(result.before.warnings)} "
              f"warnings before repair")
        for c in result.changes:
            print(f"  {c}")
        for p, a in zip(result.written, result.after, strict=True):
            print(f"wrote {p}: {len(a.errors)} errors, {len(a.warnings)} warnings")
    if not result.ok:
        reason = "; ".join(result.unfixable) or "the result does not validate"
        from .errors import ValidationFailed

        raise ValidationFailed(f"{file}: cannot be repaired for profile {profile.value}: "
                               f"{reason}; nothing written")


class StatsMode(str, Enum):
    individual = "individual"
    collective = "collective"


class Plane(str, Enum):
    all = "all"
    axial = "axial"
    coronal = "coronal"
    sagittal = "sagittal"


class StatsFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


InputsArg = Annotated[list[Path], typer.Argument(
    help="Segmentation: a DICOM SEG, or label volume(s) (.nii.gz, .nrrd, .seg.nrrd).")]
SegmentsOpt = Annotated[str | None, typer.Option(
    "--segments", help="Segment numbers, e.g. 1,3 or 2-5 (default: all).")]
@app.command()
def batch(
    manifest: Annotated[Path, typer.Argument(help="CSV manifest, one case a line: case,inputs"
                                                  "[,reference,meta,output,type,profile,to,"
                                                  "push,compression,series,contour_fill,"
                                                  "assign_uids].")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the outputs and "
                                         "results.csv.")],
    workers: Annotated[int, typer.Option("--workers", "-j", help="Cases at once (local "
                                         "processes, or LocalCluster workers).")] = 1,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Run on a Dask cluster: its scheduler address "
                            "(tcp://host:8786), or 'local' for a LocalCluster.")] = None,
    memory_limit: Annotated[str | None, typer.Option(
        "--memory-limit", help="Memory limit of each LocalCluster worker (Dask's memory_limit, "
                               "e.g. 1GB; default auto). With --scheduler local only: an "
                               "external cluster's workers use their own dask worker "
                               "--memory-limit.")] = None,
    maps: MapOpt = None,
    unmapped: UnmappedOpt = Unmapped.keep,
    allow_merge: AllowMergeOpt = False,
    user: UserOpt = None, password: PasswordOpt = None, token: TokenOpt = None,
    ca_bundle: CaOpt = None, timeout: TimeoutOpt = None,
) -> None:
    """Convert every case of a manifest; a failing case never stops the others.

    A rerun skips the cases whose outputs are complete. Exit code 1 when any case failed.
    """
    from .batch import run_batch

    options = _web(user, password, token, ca_bundle, timeout)
    use_web = any(v is not None for v in (user, password, token, ca_bundle, timeout)) or any(
        os.environ.get(f"SEGBRIDGE_{k}") for k in ("USER", "PASSWORD", "TOKEN", "CA_BUNDLE",
                                                    "TIMEOUT"))
    with _progress("cases") as progress:
        result = run_batch(manifest, output, workers=max(1, workers), scheduler=scheduler,
                           web=options if use_web else None, progress=progress,
                           memory_limit=memory_limit, maps=maps, unmapped=unmapped.value,
                           allow_merge=allow_merge)
    counts = {s: sum(r["status"] == s for r in result.rows) for s in ("ok", "skipped", "error")}
    print(f"{counts['ok']} converted, {counts['skipped']} already done, {counts['error']} "
          f"failed; results in {result.results_csv}")
    for r in result.failed:
        where = f"case {r['case']}: " if r["case"] else ""
        print(f"error: {where}{r['message']}", file=sys.stderr)
    if result.failed:
        raise typer.Exit(1)


# -- segbridge dataset export | import (docs/datasets.md) ------------------------------------
dataset_app = typer.Typer(no_args_is_help=True, help="Training datasets: DICOM studies -> "
                          "nnU-Net v2 / MONAI, and predictions back to SEG / RTSTRUCT.")
app.add_typer(dataset_app, name="dataset")


class DatasetFormat(str, Enum):
    nnunet = "nnunet"
    monai = "monai"


class ToKind(str, Enum):
    seg = "seg"
    rtstruct = "rtstruct"


DatasetMapOpt = Annotated[list[str], typer.Option(
    "--labels", help="Relabel map(s) naming every target with its label number (and "
                     "optionally priority, region); repeat to layer maps. See "
                     "docs/datasets.md.")]


@dataset_app.command("export")
def dataset_export(
    source: Annotated[Path, typer.Argument(help="A batch manifest (case,inputs,reference,...) "
                                                "or a folder of DICOM studies.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The new dataset folder "
                                         "(nnU-Net: DatasetXXX_Name).")],
    labels: DatasetMapOpt,
    format: Annotated[DatasetFormat, typer.Option("--format", help="Dataset layout.")] =
    DatasetFormat.nnunet,
    split: Annotated[int, typer.Option("--split", help="Number of folds (0: none).")] = 0,
    channel: Annotated[str | None, typer.Option(
        "--channel-name", help="Name of the image channel (default: the Modality, e.g. CT); "
                               "cases of another modality are left out without it.")] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Cases at once.")] = 1,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Dask scheduler address, or 'local'.")] = None,
    allow_merge: AllowMergeOpt = False,
    user: UserOpt = None, password: PasswordOpt = None, token: TokenOpt = None,
    ca_bundle: CaOpt = None, timeout: TimeoutOpt = None,
) -> None:
    """Write an nnU-Net v2 or MONAI dataset; failing cases are left out, one line each in
    segbridge_report.txt and here. Exit code 1 when any case failed (the dataset holds the
    rest)."""
    from .datasets.export import REPORT_FILE, export_dataset

    options = _web(user, password, token, ca_bundle, timeout)
    result = export_dataset(source, output, format=format.value, labels=labels, split=split,
                            workers=max(1, workers), scheduler=scheduler,
                            web=options.as_dict(), channel_name=channel,
                            allow_merge=allow_merge)
    print(f"{len(result.ok)} case(s) exported, {len(result.failed)} left out; dataset in "
          f"{result.folder}")
    for r in result.ok:
        for w in r.get("warnings", []):
            print(f"warning: case {r['case']}: {w}", file=sys.stderr)
    for r in result.failed:
        print(f"error: case {r['case'] or '-'} ({r['source']}): {_one_line(r['message'])}",
              file=sys.stderr)
    if result.failed:
        print(f"left-out cases are listed in {result.folder / REPORT_FILE}", file=sys.stderr)
        raise typer.Exit(1)


@dataset_app.command("import")
def dataset_import(
    predictions: Annotated[Path, typer.Argument(help="Folder of predicted label NIfTIs "
                                                     "({case}.nii.gz).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for {case}.dcm.")],
    reference_root: Annotated[Path, typer.Option(
        "--reference-root", help="Folder holding the cases' DICOM image series.")],
    labels: DatasetMapOpt,
    to: Annotated[ToKind, typer.Option("--to", help="SEG or RTSTRUCT.")] = ToKind.seg,
    cases: Annotated[Path | None, typer.Option(
        "--cases", help="The export's segbridge_cases.json (default: in PREDICTIONS or the "
                        "folder above).")] = None,
    profile: Annotated[ProfileName, typer.Option("--profile", help="SEG writer profile.")] =
    ProfileName.ohif,
    push_url: Annotated[str | None, typer.Option(
        "--push", help="Store each output on this DICOMweb server (STOW-RS).")] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Cases at once.")] = 1,
    resample: Annotated[bool, typer.Option(
        "--resample", help="Allow nearest-neighbour resampling of a prediction whose grid is "
                           "not its reference series' grid.")] = False,
    user: UserOpt = None, password: PasswordOpt = None, token: TokenOpt = None,
    ca_bundle: CaOpt = None, timeout: TimeoutOpt = None,
) -> None:
    """Predicted label maps -> one SEG or RTSTRUCT per case on its DICOM reference, named,
    coded and coloured by the map. Exit code 1 when any case failed."""
    from .datasets.import_ import import_predictions

    options = _web(user, password, token, ca_bundle, timeout)
    rows = import_predictions(predictions, output, reference_root=reference_root,
                              labels=labels, to=to.value, cases_file=cases, push=push_url,
                              profile=profile.value, workers=max(1, workers),
                              web=options.as_dict(), resample=resample)
    ok = [r for r in rows if r["status"] == "ok"]
    print(f"{len(ok)} case(s) written, {len(rows) - len(ok)} failed; outputs in {output}")
    for r in ok:
        if r.get("message"):  # its warnings (resampled, ...) and what --push did
            print(f"case {r['case']}: {r['message']}", file=sys.stderr)
    for r in rows:
        if r["status"] != "ok":
            print(f"error: case {r['case']} ({r['source']}): {_one_line(r['message'])}",
                  file=sys.stderr)
    if len(ok) != len(rows):
        raise typer.Exit(1)


SrOpt = Annotated[Path | None, typer.Option(
    "--sr", help="Also write a DICOM SR (TID 1500) measurement report.")]
AssignUidsOpt = Annotated[bool, typer.Option(
    "--assign-uids", help="Accept images with blank study/series UIDs.")]


def _names(inputs: list[Path]) -> str:
    """The input files as messages name them."""
    return ", ".join(str(p) for p in inputs)


def _guard(loaded, *outputs: Path | None) -> None:
    """Refuse outputs of stats / measure / render that would replace one of their inputs."""
    from .outputs import files_read, refuse_overwrite

    outs = [o for o in outputs if o is not None]
    if outs:
        refuse_overwrite(outs, files_read(loaded.paths, reference=loaded.image))


def _slide_measure(path: Path, image, output, csv_out, connectivity, as_json, report,
                   segments: str | None = None) -> None:
    """segbridge measure on a slide: summary table (or JSON), objects to --csv / -o JSON."""
    from .errors import InvalidInputError
    from .slide.measure import measure_slide_file

    if connectivity not in (4, 8):
        raise InvalidInputError(f"--connectivity must be 4 or 8, got {connectivity}")
    summary, objects = measure_slide_file(path, reference=image, connectivity=connectivity,
                                          csv_path=csv_out, json_path=output, report=report,
                                          segments=segments)
    if as_json and output is None:
        print(json.dumps({"input": str(path), "segments": summary}, indent=1))
    else:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=escape(f"{path.name}: {len(objects):,} objects"))
        for col in ("segment", "label", "objects", "area (mm2)"):
            table.add_column(col, justify="right" if col != "label" else "left")
        for row in summary:
            table.add_row(str(row["segment"]), escape(row["label"]), f"{row['objects']:,}",
                          f"{row['area_mm2']:.6g}")
        _console().print(table)
    for p in (csv_out, output):
        if p is not None:
            print(f"wrote {p}", file=sys.stderr)
    _print_report(report)


def _is_slide_input(path: Path) -> bool:
    """A slide SEG or a slide label image (.tif / .tiff / .npy)?"""
    from .slide.convert import is_slide_job

    return is_slide_job([path], None)


def _guard_paths(inputs, output: Path, *others) -> None:
    """Refuse an output that would replace one of the named local inputs."""
    from .outputs import refuse_overwrite
    from .web.client import is_url

    refuse_overwrite([output], [p for p in (*inputs, *others) if p and not is_url(str(p))])


def _emit(text: str, output: Path | None) -> None:
    """Print, or write a file through a temporary name (no partial output)."""
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from .outputs import tmp_name

    if not output.parent.is_dir():
        from .errors import InvalidInputError

        raise InvalidInputError(f"{output}: output folder {output.parent} does not exist")
    tmp = tmp_name(output)
    try:
        tmp.write_text(text)
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()


def _print_report(report, *, stream=None) -> None:
    stream = stream or sys.stderr
    for n in report.notes:
        print(f"note: {n}", file=stream)
    for w in report.warnings:
        print(f"warning: {w}", file=stream)


@app.command()
def stats(
    inputs: InputsArg,
    image: Annotated[str, typer.Option(
        "--image", "-i", help="The image series the values come from (folder, files, or a "
                              "DICOMweb series URL).")],
    series: SeriesOpt = None,
    segments: SegmentsOpt = None,
    mode: Annotated[StatsMode, typer.Option(
        "--mode", help="individual: one row per segment; collective: their union.")] = (
        StatsMode.individual),
    fmt: Annotated[StatsFormat, typer.Option("--format", help="Output format.")] = (
        StatsFormat.table),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to a file.")] = None,
    sr: SrOpt = None,
    assign_uids: AssignUidsOpt = False,
    user: UserOpt = None, password: PasswordOpt = None, token: TokenOpt = None,
    ca_bundle: CaOpt = None, timeout: TimeoutOpt = None,
) -> None:
    """Per-segment statistics (volume, HU / SUV, percentiles...) as Cornerstone3D defines them."""
    _web(user, password, token, ca_bundle, timeout)
    from .errors import Report
    from .measure import job
    from .measure.stats import compute_stats, parse_segment_list
    from .measure.tables import stats_table, to_csv, to_json

    report = Report()
    loaded = job.load(inputs, image, series_uid=series, assign_uids=assign_uids, report=report)
    job.require_patient_space(loaded, "statistics (volumes in mm3)")
    _guard(loaded, output, sr)
    numbers = parse_segment_list(segments, loaded.seg, _names(inputs))
    result = compute_stats(loaded.seg, loaded.image, numbers=numbers, mode=mode.value,
                           report=report)
    written = []
    if sr is not None:
        from .measure.bidirectional import measure_all

        per_segment = result if mode == StatsMode.individual else compute_stats(
            loaded.seg, loaded.image, numbers=numbers, report=Report())
        axes = measure_all(loaded.seg, numbers)
        written = job.write_sr(loaded, sr, numbers, stats=per_segment, axes=axes, report=report)
    if fmt == StatsFormat.table:
        from io import StringIO

        from rich.console import Console

        console = _console() if output is None else Console(file=StringIO(), width=160)
        stats_table(result, console, f"{', '.join(p.name for p in inputs)} on "
                    f"{loaded.image.modality or 'image'} series "
                    f"{loaded.image.source.series_instance_uid}")
        if output is not None:
            _emit(console.file.getvalue(), output)
    elif fmt == StatsFormat.csv:
        _emit(to_csv([s.as_dict() for s in result]), output)
    else:
        _emit(to_json({"inputs": [str(p) for p in inputs], "image": str(image),
                       "mode": mode.value, "segments": [s.as_dict() for s in result],
                       "notes": report.notes, "warnings": report.warnings}), output)
    for p in written:
        print(f"wrote {p}", file=sys.stderr)
    _print_report(report)


@app.command()
def measure(
    inputs: InputsArg,
    image: Annotated[str | None, typer.Option(
        "--image", "-i", help="The image series (gives SOP Instance UIDs and statistics for "
                              "the SR).")] = None,
    series: SeriesOpt = None,
    segments: SegmentsOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the JSON to a file.")] = None,
    sr: SrOpt = None,
    assign_uids: AssignUidsOpt = False,
    csv_out: Annotated[Path | None, typer.Option(
        "--csv", help="Slides: write one row per object (area, centroid in pixels and slide "
                      "mm, box) to this CSV file.")] = None,
    connectivity: Annotated[int, typer.Option(
        "--connectivity", help="Slides: objects are 8- or 4-connected pixels.")] = 8,
    user: UserOpt = None, password: PasswordOpt = None, token: TokenOpt = None,
    ca_bundle: CaOpt = None, timeout: TimeoutOpt = None,
) -> None:
    """Largest bidirectional (long and short axis) of every segment, as Cornerstone3D defines it;
    for a slide segmentation: area, object count and every object's area and centroid."""
    _web(user, password, token, ca_bundle, timeout)
    from .errors import InvalidInputError, Report
    from .measure import job
    from .measure.bidirectional import measure_all
    from .measure.stats import compute_stats, parse_segment_list
    from .measure.tables import axes_table, to_json

    report = Report()
    if len(inputs) == 1 and _is_slide_input(inputs[0]):
        if sr is not None:
            raise InvalidInputError(f"{sr}: --sr writes a TID 1500 report of volume "
                                    "measurements; slide measurements go to --csv / -o")
        _slide_measure(inputs[0], image, output, csv_out, connectivity, as_json, report,
                       segments)
        return
    loaded = job.load(inputs, image, series_uid=series, assign_uids=assign_uids, report=report)
    job.require_patient_space(loaded, "bidirectional measurements (mm)")
    _guard(loaded, output, sr)
    numbers = parse_segment_list(segments, loaded.seg, _names(inputs))
    axes = measure_all(loaded.seg, numbers, report=report)
    written = []
    if sr is not None:
        st = compute_stats(loaded.seg, loaded.image, numbers=numbers, report=Report())
        written = job.write_sr(loaded, sr, numbers, stats=st, axes=axes, report=report)
    if as_json or output is not None:
        _emit(to_json({"inputs": [str(p) for p in inputs],
                       "segments": [a.as_dict() for a in axes],
                       "notes": report.notes, "warnings": report.warnings}), output)
    else:
        axes_table(axes, _console(), f"largest bidirectional, {', '.join(p.name for p in inputs)}")
    for p in written:
        print(f"wrote {p}", file=sys.stderr)
    _print_report(report)


@app.command()
def render(
    inputs: InputsArg,
    image: Annotated[str, typer.Option(
        "--image", "-i", help="The image series to draw on (folder, files, or DICOMweb "
                              "series URL).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")],
    series: SeriesOpt = None,
    segments: SegmentsOpt = None,
    slice_: Annotated[str, typer.Option(
        "--slice", help="Axial slice index, or auto (the slice of the chosen segment's largest "
                        "bidirectional).")] = "auto",
    focus: Annotated[int | None, typer.Option(
        "--focus", help="Segment the views go through (default: the largest).")] = None,
    plane: Annotated[Plane, typer.Option(
        "--plane", help="All three views side by side, or one of them (--slice then moves "
                        "that one).")] = Plane.all,
    assign_uids: AssignUidsOpt = False,
    user: UserOpt = None, password: PasswordOpt = None, token: TokenOpt = None,
    ca_bundle: CaOpt = None, timeout: TimeoutOpt = None,
) -> None:
    """A PNG preview: axial, coronal and sagittal views with every segment and the axes."""
    _web(user, password, token, ca_bundle, timeout)
    from . import io
    from .errors import InvalidInputError, Report
    from .measure import job
    from .measure.bidirectional import measure_all
    from .measure.render import render as do_render
    from .measure.stats import parse_segment_list

    report = Report()
    if len(inputs) == 1 and _is_slide_input(inputs[0]):
        from .slide.convert import preview_file

        _guard_paths(inputs, output, image)
        print(f"wrote {preview_file(inputs[0], image, output, report=report)}")
        _print_report(report)
        return
    loaded = job.load(inputs, image, series_uid=series, assign_uids=assign_uids, report=report)
    _guard(loaded, output)
    seg = loaded.seg
    if not seg.grid.same_as(loaded.image.grid):
        seg = io.read(inputs, reference=loaded.image, resample=True, report=report)
    numbers = parse_segment_list(segments, seg, _names(inputs))
    if slice_ != "auto" and not slice_.lstrip("-").isdigit():
        raise InvalidInputError(f"--slice must be auto or a slice number, got {slice_!r}")
    axes = [] if seg.frame_space else measure_all(seg, numbers)  # no mm without geometry
    title = f"{', '.join(p.name for p in inputs)} on {loaded.image.modality or 'image'}"
    out = do_render(seg, loaded.image, output, numbers=numbers, focus=focus,
                    slice_index=None if slice_ == "auto" else int(slice_), axes=axes,
                    title=title, report=report, what=_names(inputs), plane=plane.value)
    print(f"wrote {out}")
    _print_report(report)


class InterpAxis(str, Enum):
    auto = "auto"
    z = "z"
    y = "y"
    x = "x"


class InterpMethod(str, Enum):
    morphological = "morphological"
    linear_sdf = "linear-sdf"


@app.command()
def interpolate(
    inputs: Annotated[list[Path], typer.Argument(help="Segmentation: a DICOM SEG or RTSTRUCT "
                                                 "(with -r), .nii / .nii.gz, .nrrd, "
                                                 ".seg.nrrd.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Output file; the suffix picks the format, as in convert.")],
    reference: ReferenceOpt = None,
    series: SeriesOpt = None,
    segments: SegmentsOpt = None,
    axis: Annotated[InterpAxis, typer.Option(
        "--axis", help="Axis the annotated slices are stacked along: auto (per segment, the "
                       "one with the sparsest slices), z (slices), y (rows) or x (columns).")
    ] = InterpAxis.auto,
    method: Annotated[InterpMethod, typer.Option(
        "--method", help="morphological: ITK's morphological contour interpolation (as "
                         "Slicer's Fill between slices); linear-sdf: blend of signed distance "
                         "maps (faster, no island pairing).")] = InterpMethod.morphological,
    type: Annotated[SegType, typer.Option("--type", help="SEG type to write.")] = SegType.auto,
    profile: Annotated[ProfileName, typer.Option(
        "--profile", help="Target consumer of a DICOM SEG.")] = ProfileName.ohif,
    split_overlaps: SplitOverlapsOpt = None,
    to: Annotated[ToKind, typer.Option(
        "--to", help="A .dcm output as SEG or RTSTRUCT (an RTSTRUCT input comes back as an "
                     "RTSTRUCT with --to rtstruct).")] = ToKind.seg,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Write even when the output fails validation for the profile.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Fill the slices between annotated slices of each segment (overlap kept, annotated
    slices unchanged), and write the result like convert does."""
    from . import io
    from .errors import Report
    from .interpolation import interpolate as do_interpolate
    from .measure.stats import parse_segment_list
    from .outputs import files_read

    report = Report(strict=strict)
    ref = io.load_reference(reference, series_uid=series, report=report)
    seg = io.read(inputs, reference=ref, strict=strict, report=report)
    numbers = parse_segment_list(segments, seg, _names(inputs))
    result = do_interpolate(seg, segments=numbers, axis=axis.value, method=method.value,
                            report=report)
    with _progress("encoding frames") as progress:
        written = io.write(result, output, type=type.value, profile=profile.value,
                           split_overlaps=split_overlaps, report=report, progress=progress,
                           reference=ref, force=force, to=to.value,
                           protect=files_read(inputs, reference=ref))
    if as_json:
        print(json.dumps({"written": [str(p) for p in written],
                          "segments": len(result.segments), "notes": report.notes,
                          "warnings": report.warnings}, indent=2))
        return
    _print_written(inputs, seg, report, written)


@app.command()
def demo(
    outdir: Annotated[Path, typer.Argument(help="Folder for the demo files.")] = Path(
        "segbridge-demo"),
) -> None:
    """Build a synthetic CT with overlapping structures and round-trip it through every SEG type."""
    from .demo import run_demo

    ok = run_demo(outdir, _console())
    if not ok:
        raise typer.Exit(1)


@app.command()
def serve(
    pacs: Annotated[str, typer.Option("--pacs", help="DICOMweb root of the PACS "
                                      "(http://host/dicom-web); credentials from "
                                      "SEGBRIDGE_USER / _PASSWORD / _TOKEN / _CA_BUNDLE.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes for "
                                         "conversions.")] = 2,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", help="Bearer tokens clients must send, one a line (without it the "
                             "service listens on loopback only).")] = None,
    max_upload: Annotated[int, typer.Option("--max-upload", help="Largest request body in "
                                            "bytes (413 above).")] = 2 << 30,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds a request may take "
                                           "(504 after).")] = 300.0,
    queue: Annotated[int, typer.Option("--queue", help="Requests that may wait for a worker "
                                       "(503 + Retry-After beyond).")] = 8,
    tmp_dir: Annotated[Path | None, typer.Option(
        "--tmp-dir", help="Folder for the per-request temporary folders.")] = None,
) -> None:
    """Serve the library over HTTP: mask -> DICOM SEG in the PACS, validate, convert, stats.

    See docs/serve.md. Needs the serve extra: pip install 'segbridge[serve]'.
    """
    from .serve import ServeConfig, run

    config = ServeConfig.build(pacs, host=host, port=port, workers=workers,
                               token_file=token_file, max_upload=max_upload, timeout=timeout,
                               queue=queue, tmp_dir=tmp_dir)
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        from .errors import UnsupportedError

        raise UnsupportedError(f"segbridge serve needs {exc.name}: pip install "
                               "'segbridge[serve]'") from None
    run(config)


#: libraries whose Python warnings are theirs to tune, not the user's to read (what matters
#: reaches the user through segbridge's own report)
_QUIET = r"(pydicom|nibabel|highdicom|dicomweb_client|distributed|dask|nrrd|pylibjpeg|jpeg_ls|" \
         r"openjpeg|rle|PIL|retrying|urllib3|requests|tornado)(\.|$)"


def _one_line_warnings() -> None:
    """Show our own Python warnings as one ``warning:`` line each; hide libraries' ones."""
    import warnings

    warnings.filterwarnings("ignore", module=_QUIET)

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        print(f"warning: {text} ({category.__name__})", file=sys.stderr)

    warnings.showwarning = show


def _one_line(text: str) -> str:
    """A message on one line: wrapped libraries sometimes put newlines in theirs, and text
    taken from a damaged file may hold control characters (escaped, never sent to the
    terminal as they are)."""
    line = "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)


def _aborted() -> None:
    print("segbridge: terminated" if signals.terminated() else "segbridge: aborted",
          file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # the main thread has cleaned up its temporary files by now; do not wait for transfer
    # threads blocked on the network (a pull removes their leftovers when rerun)
    os._exit(signals.exit_code())


def main() -> None:
    """Console entry point: run the app, turn SegbridgeError into one line and an exit code."""
    debug = os.environ.get("SEGBRIDGE_DEBUG") == "1"
    signals.running()
    if not debug:
        import logging

        _one_line_warnings()
        for name in ("pydicom", "retrying", "dicomweb_client", "distributed"):
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        code = app(standalone_mode=False)  # typer.Exit comes back as the return value here
    except SegbridgeError as exc:
        if debug:
            raise
        print(f"segbridge: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except typer.Exit as exc:
        if exc.exit_code == 130:
            _aborted()
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _aborted()
    except OSError as exc:  # the disk, the file system or a permission said no
        if debug:
            raise
        import errno

        from .outputs import shown_name

        # an output, not its temporary name; a full disk names no file: the one being written
        shown = shown_name(exc.filename) if exc.filename else shown_name(None) if \
            exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else None
        where = f"{shown}: " if shown is not None else ""
        print(f"segbridge: error: {where}{_one_line(exc.strerror or exc)}", file=sys.stderr)
        sys.exit(1)
    except MemoryError:
        if debug:
            raise
        print("segbridge: error: out of memory (the data is larger than this machine can hold "
              "at once)", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # usage errors (typer's click) and anything unexpected
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            ctx, names = getattr(exc, "ctx", None), []
            while ctx is not None and ctx.parent is not None:  # the root is "segbridge"
                names.insert(0, ctx.info_name)
                ctx = ctx.parent
            where = " ".join(["segbridge", *names])
            message = _one_line(exc.format_message().replace("Value error, ", ""))
            print(f"{where}: error: {message} (see --help)", file=sys.stderr)
            sys.exit(exc.exit_code)
        if debug:
            raise
        print(f"segbridge: internal error: {type(exc).__name__}: {_one_line(exc)} (set "
              "SEGBRIDGE_DEBUG=1 for details, and please report it)", file=sys.stderr)
        sys.exit(3)
    if code == 130:  # typer turns Ctrl-C into Exit(130), which comes back as the result
        _aborted()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
