#!/usr/bin/env python
"""Seeded mutation fuzzer for the segbridge command line (issue 11, "Must show: a fuzz suite").

Every run takes one real file (from ``../shared/data``, or a segbridge output made from one at the
start of the session), mutates it (truncation, byte flips, zeroed or duplicated ranges, or a flip
inside a gzip stream that is then recompressed), copies it with its reference series into a fresh
folder, runs the real CLI in a subprocess and classifies what happened:

* exit 0 of ``convert``: the output, read by an independent reader (nibabel, pynrrd, pydicom with
  our own frame placement, rt-utils), must hold the same segments voxel for voxel as the
  independent reading of the *mutant* input. When that reading refuses the mutant, the run is a
  failure if the refusal is an integrity check (damaged gzip / deflate / RLE stream, pixel data
  shorter than the header says, non-finite or singular geometry: accepting those is silent
  corruption, issue 11 class 1) and a *disagreement* otherwise (a library being stricter than
  segbridge's documented tolerance), reported with its reason.
* exit 1 (or 2): stderr is one line that names the file, without "Traceback" or
  "internal error"; nothing is left in the output folder. (``validate`` may also exit 1 with its
  findings on stdout and nothing on stderr.)
* anything else is a failure: exit 3 or any other code, a traceback, a timeout or a signal, a
  temporary file left behind, a changed or added input file, partial output after an error.

Runs are reproducible one by one: run ``i`` of kind ``k`` depends only on ``--seed``, ``k`` and
``i`` (``--replay k:i``). ``python tests/fuzz.py --runs 2000`` is the long run (docs/fuzzing.md);
``tests/test_fuzz.py`` runs a fixed small sample in CI.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SEGBRIDGE_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data"
DCMQI = DATA / "dcmqi" / "data" / "segmentations"
CT3 = DCMQI / "ct-3slice"
IMG24 = DCMQI / "24x38x3" / "image"
IMG23 = DCMQI / "23x38x3" / "image"
PYD = DATA / "pydicom-data" / "data_store" / "data"
HD = DATA / "highdicom" / "data" / "test_files"
RTU = DATA / "rt-utils" / "tests" / "mock_data"
TOTALSEG = DATA / "totalsegmentator" / "tests" / "reference_files"
SLICERIO = DATA / "slicerio" / "slicerio" / "data"
SLICERRT = DATA / "slicerrt" / "Testing" / "Data"
PYRAD = DATA / "pyradiomics" / "data"

TIMEOUT = 120.0  # seconds per CLI run; the inputs are small, a hang is a failure
LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
TMP_NAME = re.compile(r"(^\.|\.tmp|\.part$|~$)")

# reference series (the files copied into ref/ for a run)
REFS: dict[str, list[Path]] = {
    "ct3": sorted(CT3.glob("*.dcm")),
    "img24": sorted(IMG24.glob("*.dcm")),
    "img23": sorted(IMG23.glob("*.dcm")),
    "ct_small": [HD / "ct_image.dcm"],
    "rtu": [RTU / "ct_1.dcm", RTU / "ct_2.dcm"],
}


# --------------------------------------------------------------------------- seeds and kinds

@dataclass(frozen=True)
class Seed:
    """A base file of one kind: where it comes from and how it is converted."""

    name: str
    source: Path | str          # a real file, or "made:<key>" (a segbridge/pynrrd output)
    oracle: str                 # seg | nifti | nrrd | rt
    ref: str | None = None      # key of REFS when the file belongs to a reference series
    data: Path | str | None = None  # detached NRRD data file


MADE = {  # key -> (file name, argv after "convert", or a python builder)
    "frac24.dcm": ["{DCMQI}/24x38x3/nrrd/label.nrrd", "-r", "{IMG24}", "--type", "fractional",
                   "--profile", "slicer"],
    "lm24.dcm": ["{DCMQI}/24x38x3/nrrd/label.nrrd", "-r", "{IMG24}", "--type", "labelmap"],
    "lmliver.dcm": ["{DCMQI}/liver_spine_seg.nrrd", "-r", "{CT3}", "--type", "labelmap",
                    "--compression", "rle"],
    "rle23.dcm": ["{DCMQI}/23x38x3/nrrd/label.nrrd", "-r", "{IMG23}", "--compression", "rle",
                  "--type", "binary", "--profile", "archive"],
    "jls24.dcm": ["{DCMQI}/24x38x3/nrrd/label.nrrd", "-r", "{IMG24}", "--compression", "jpegls",
                  "--profile", "archive"],
    "jlsliver.dcm": ["{DCMQI}/liver_seg.nrrd", "-r", "{CT3}", "--compression", "jpegls",
                     "--profile", "archive"],
    "j2kliver.dcm": ["{DCMQI}/liver_seg.nrrd", "-r", "{CT3}", "--compression", "jpeg2000",
                     "--profile", "archive"],
    "dfr24.dcm": ["{DCMQI}/24x38x3/nrrd/label.nrrd", "-r", "{IMG24}", "--compression",
                  "deflate-frame", "--profile", "archive"],
    "dfl24.dcm": ["{DCMQI}/24x38x3/nrrd/label.nrrd", "-r", "{IMG24}", "--compression", "deflate",
                  "--profile", "archive", "--type", "binary"],
    "dflliver.dcm": ["{DCMQI}/liver_spine_seg.nrrd", "-r", "{CT3}", "--compression", "deflate",
                     "--profile", "archive"],
    "rtliver.dcm": ["{DCMQI}/liver_spine_seg.nrrd", "-r", "{CT3}", "--to", "rtstruct"],
    "livseg.nii.gz": ["{DCMQI}/liver.dcm", "-r", "{CT3}"],
    "lsv.nii": ["{DCMQI}/liver_spine_seg.nrrd"],
    "l24.nii.gz": ["{DCMQI}/24x38x3/nrrd/label.nrrd"],
    "overlap.seg.nrrd": ["{DCMQI}/partial_overlaps.dcm", "-r", "{CT3}"],
    "ls.seg.nrrd": ["{DCMQI}/liver_spine_seg.nrrd"],
    "example_seg.nii": "gunzip:{TOTALSEG}/example_seg_mr.nii.gz",
    "l24raw.nrrd": "raw:{DCMQI}/24x38x3/nrrd/label.nrrd",
    "prostate_raw.nrrd": "raw:{PYRAD}/prostate_phantom_subvolume-label.nrrd",
    "l24d.nhdr": "detached-raw:{DCMQI}/24x38x3/nrrd/label.nrrd",
    "livd.nhdr": "detached-gzip:{DCMQI}/liver_seg.nrrd",
}

KINDS: dict[str, list[Seed]] = {
    "seg-binary": [
        Seed("liver", DCMQI / "liver.dcm", "seg", "ct3"),
        Seed("partial_overlaps", DCMQI / "partial_overlaps.dcm", "seg", "ct3"),
        Seed("label24", DCMQI / "24x38x3" / "seg" / "label.seg", "seg", "img24"),
        Seed("label23", DCMQI / "23x38x3" / "seg" / "label.seg", "seg", "img23"),
        Seed("ct_single", HD / "seg_image_ct_binary_single_frame.dcm", "seg", "ct_small"),
        Seed("liver_expb", PYD / "liver_expb.dcm", "seg", "ct3"),
    ],
    "seg-fractional": [
        Seed("hd_true_fractional", HD / "seg_image_ct_true_fractional.dcm", "seg"),
        Seed("hd_binary_fractional", HD / "seg_image_ct_binary_fractional.dcm", "seg"),
        Seed("frac24", "made:frac24.dcm", "seg", "img24"),
    ],
    "seg-labelmap": [
        Seed("ppv5", DCMQI / "sparse-labelmap-ppv5.dcm", "seg", "img24"),
        Seed("noppv", DCMQI / "sparse-labelmap-noppv.dcm", "seg", "img24"),
        Seed("lm24", "made:lm24.dcm", "seg", "img24"),
        Seed("lmliver", "made:lmliver.dcm", "seg", "ct3"),
    ],
    "seg-rle": [
        Seed("liver_rle", PYD / "liver_rle.dcm", "seg", "ct3"),
        Seed("rle23", "made:rle23.dcm", "seg", "img23"),
    ],
    "seg-jpegls": [
        Seed("jls24", "made:jls24.dcm", "seg", "img24"),
        Seed("jlsliver", "made:jlsliver.dcm", "seg", "ct3"),
    ],
    "seg-jpeg2000": [
        Seed("liver_j2k", PYD / "liver_j2k.dcm", "seg", "ct3"),
        Seed("j2kliver", "made:j2kliver.dcm", "seg", "ct3"),
    ],
    "seg-deflate-frame": [
        Seed("liver_deflate", PYD / "liver_deflate.dcm", "seg", "ct3"),
        Seed("dfr24", "made:dfr24.dcm", "seg", "img24"),
    ],
    "seg-deflated-ts": [
        Seed("dfl24", "made:dfl24.dcm", "seg", "img24"),
        Seed("dflliver", "made:dflliver.dcm", "seg", "ct3"),
    ],
    "rtstruct": [
        Seed("rtutils_rt", RTU / "rt.dcm", "rt", "rtu"),
        Seed("rtliver", "made:rtliver.dcm", "rt", "ct3"),
    ],
    "nifti": [
        Seed("liver_spine_nii", "made:lsv.nii", "nifti", "ct3"),
        Seed("totalseg_mr_nii", "made:example_seg.nii", "nifti"),
    ],
    "nifti-gz": [
        Seed("totalseg_fast", TOTALSEG / "example_seg_fast.nii.gz", "nifti"),
        Seed("totalseg_mr", TOTALSEG / "example_seg_mr.nii.gz", "nifti"),
        Seed("liver_niigz", "made:livseg.nii.gz", "nifti", "ct3"),
        Seed("l24_niigz", "made:l24.nii.gz", "nifti", "img24"),
    ],
    "nrrd-raw": [
        Seed("l24raw", "made:l24raw.nrrd", "nrrd", "img24"),
        Seed("prostate_raw", "made:prostate_raw.nrrd", "nrrd"),
    ],
    "nrrd-gz": [
        Seed("liver_seg", DCMQI / "liver_seg.nrrd", "nrrd", "ct3"),
        Seed("partial_overlaps-1", DCMQI / "partial_overlaps-1.nrrd", "nrrd", "ct3"),
        Seed("label24", DCMQI / "24x38x3" / "nrrd" / "label.nrrd", "nrrd", "img24"),
        Seed("breast1", PYRAD / "breast1_label.nrrd", "nrrd"),
    ],
    "nrrd-detached": [
        Seed("l24_nhdr", "made:l24d.nhdr", "nrrd", "img24", data="made:l24d.raw"),
        Seed("liver_nhdr", "made:livd.nhdr", "nrrd", "ct3", data="made:livd.raw.gz"),
    ],
    "seg-nrrd": [
        Seed("slicerio", SLICERIO / "Segmentation.seg.nrrd", "nrrd"),
        Seed("slicerio_overlap", SLICERIO / "SegmentationOverlapping.seg.nrrd", "nrrd"),
        Seed("slicerrt", SLICERRT / "EclipseProstate_Bladder_Intersect_PTV.seg.nrrd", "nrrd"),
        Seed("overlap_made", "made:overlap.seg.nrrd", "nrrd", "ct3"),
        Seed("ls_made", "made:ls.seg.nrrd", "nrrd", "ct3"),
    ],
}


def _expand(s: str) -> str:
    return s.format(DCMQI=DCMQI, CT3=CT3, IMG24=IMG24, IMG23=IMG23, TOTALSEG=TOTALSEG,
                    PYRAD=PYRAD)


def make_seeds(folder: Path, keys: set[str]) -> dict[str, Path | str]:
    """Build the "made:" seeds into ``folder``: segbridge outputs (through the CLI) and pynrrd
    re-encodings of real files. Returns key -> path, or key -> error text when it could not be
    made (the seed is then skipped and reported)."""
    import nrrd

    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, Path | str] = {}
    for key in sorted(keys):
        if key in made:
            continue
        recipe = MADE[key]
        out = folder / key
        try:
            if isinstance(recipe, list):
                argv = [_expand(a) for a in recipe]
                res = _cli(["convert", *argv, "-o", str(out)], cwd=folder, timeout=300)
                if res.returncode != 0 or not out.exists():
                    raise RuntimeError(f"exit {res.returncode}: {res.stderr.strip()[-300:]}")
            else:
                how, src = recipe.split(":", 1)
                src = _expand(src)
                if how == "gunzip":
                    out.write_bytes(gzip.decompress(Path(src).read_bytes()))
                else:
                    data, header = nrrd.read(src, index_order="F")
                    header = {k: v for k, v in header.items()
                              if k not in ("encoding", "data file", "datafile")}
                    if how == "raw":
                        header["encoding"] = "raw"
                        nrrd.write(str(out), data, header, index_order="F")
                    else:  # detached header (.nhdr) + data file (.raw / .raw.gz)
                        gz = how == "detached-gzip"
                        header["encoding"] = "gzip" if gz else "raw"
                        nrrd.write(str(out), data, header, detached_header=True,
                                   index_order="F")
                        data_name = key[:-len(".nhdr")] + (".raw.gz" if gz else ".raw")
                        if not (folder / data_name).is_file():
                            raise RuntimeError(f"pynrrd wrote no {data_name}")
                        made[data_name] = folder / data_name
            made[key] = out
        except Exception as exc:  # noqa: BLE001 - a seed we cannot make is reported, not fatal
            made[key] = f"{type(exc).__name__}: {exc}"
    return made


def _cli(argv: list[str], *, cwd: Path, timeout: float = TIMEOUT,
         env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("SEGBRIDGE_DEBUG", None)
    e["COLUMNS"] = "200"
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "segbridge", *argv], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout,
                          errors="replace")


# --------------------------------------------------------------------------- mutations

@dataclass
class Mutation:
    """One mutation, with every number needed to redo it."""

    op: str
    target: str = "input"  # input | data (the detached NRRD data file)
    offset: int = 0
    length: int = 0
    xor: int = 0
    note: str = ""
    new: bytes = b""  # value / inner_value: the bytes put in place of [offset, offset+length)

    def describe(self) -> str:
        extra = f" xor=0x{self.xor:02x}" if self.xor else ""
        if self.op.endswith("value"):
            extra = f" new={self.new!r}"
        return (f"{self.op} {self.target} offset={self.offset} length={self.length}{extra}"
                f"{' ' + self.note if self.note else ''}")


def header_size(data: bytes, name: str) -> int:
    """Bytes at the start that are "header" for a targeted flip."""
    if name.endswith(".nii"):
        return min(len(data), 352)
    if name.endswith((".nrrd", ".nhdr")):
        end = data.find(b"\n\n")
        return min(len(data), end + 2 if end > 0 else 512)
    if name.endswith(".gz"):
        return min(len(data), 64)
    if data[128:132] == b"DICM":  # DICOM: up to the pixel data (7FE0,0010) when found
        for tag in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"):
            pos = data.rfind(tag)
            if pos > 0:
                return pos + 12
    return min(len(data), 1024)


# hostile values for one header field (issue 11: inf / NaN positions, zero spacing, huge sizes,
# junk in keys, ...); NIfTI fields are (offset, struct code) in the 348-byte NIfTI-1 header
HOSTILE_TEXT = [b"nan", b"inf", b"-inf", b"-1", b"0", b"1e308", b"4294967297", b"",
                b"(nan,nan,nan)", b"(0,0,0)", b"\xff\xfe", b"1 2", b"none", b"-0", b"1e-320",
                b"99999999999999999999"]
HOSTILE_NUMBERS = [float("nan"), float("inf"), float("-inf"), 0.0, -1.0, 1e30, 1e-30, 65536.0,
                   2.0 ** 31]
NIFTI_FIELDS = [(40 + 2 * i, "<h") for i in range(8)] + [(70, "<h"), (72, "<h")] + \
    [(76 + 4 * i, "<f") for i in range(8)] + [(108, "<f"), (112, "<f"), (116, "<f"),
                                              (252, "<h"), (254, "<h")] + \
    [(256 + 4 * i, "<f") for i in range(18)]
DS_NUMBER = re.compile(rb"-?\d+\.\d+(?:[eE][-+]?\d+)?")


def plan_value(rng: random.Random, data: bytes, name: str, target: str,
               op: str = "value") -> Mutation | None:
    """Put a hostile value in one header field (None when the file has no field to hit)."""
    import struct

    if name.endswith(".nii"):
        off, code = rng.choice(NIFTI_FIELDS)
        if off + struct.calcsize(code) > len(data):
            return None
        if code == "<h":
            new = struct.pack(code, rng.choice([0, -1, 1, 2, 7, 8, 32767, -32768]))
        else:
            new = struct.pack(code, rng.choice(HOSTILE_NUMBERS))
        return Mutation(op, target, offset=off, length=len(new), new=new)
    if name.endswith((".nrrd", ".nhdr")):
        end = data.find(b"\n\n")
        head = data[:end if end > 0 else len(data)]
        spans = [(m.start(2), m.end(2)) for m in
                 re.finditer(rb"^([^#\n][^:\n]*:=?) ?([^\n]*)$", head, re.M)]
        if not spans:
            return None
        a, b = rng.choice(spans)
        return Mutation(op, target, offset=a, length=b - a, new=rng.choice(HOSTILE_TEXT))
    if not name.endswith(".gz"):  # DICOM: a decimal string (positions, spacing, ...)
        hs = header_size(data, name)
        spans = [(m.start(), m.end()) for m in DS_NUMBER.finditer(data, 0, hs)
                 if m.end() - m.start() >= 3]
        if not spans:
            return None
        a, b = rng.choice(spans)
        # same length (the element lengths stay right), padded with spaces as DS allows
        new = rng.choice([v for v in (b"nan", b"inf", b"-inf", b"0", b"1e999", b"-0", b"1e-999")
                          if len(v) <= b - a])
        return Mutation(op, target, offset=a, length=b - a, new=new.ljust(b - a))
    return None


def plan_mutation(rng: random.Random, data: bytes, name: str, target: str,
                  vr: random.Random | None = None) -> Mutation:
    # a quarter of the runs put a hostile value in a header field (``vr``: its own random
    # stream, so the other runs stay what they were before this operator existed)
    if vr is not None and vr.random() < 0.25:
        m = None
        if name.endswith(".gz"):
            try:
                m = plan_value(vr, gzip.decompress(data), name[:-3], target, "inner_value")
            except Exception:  # noqa: BLE001 - not a gzip stream: no value to change
                m = None
        else:
            m = plan_value(vr, data, name, target)
        if m is not None:
            return m
    n = len(data)
    ops = ["truncate", "truncate_tail", "flip", "flip_header", "flip_trailer", "zero", "dup"]
    if name.endswith(".gz"):
        ops += ["inner_flip", "inner_flip", "inner_truncate"]
    op = rng.choice(ops)
    if op == "truncate":
        return Mutation(op, target, offset=rng.randrange(0, max(1, n)))
    if op == "truncate_tail":
        k = rng.randint(1, min(16, max(1, n - 1)))
        return Mutation(op, target, offset=n - k, length=k)
    if op in ("flip", "flip_header", "flip_trailer"):
        if op == "flip":
            off = rng.randrange(n)
        elif op == "flip_header":
            off = rng.randrange(max(1, header_size(data, name)))
        else:
            off = n - rng.randint(1, min(16, n))
        return Mutation(op, target, offset=off, length=1, xor=rng.randint(1, 255))
    if op in ("zero", "dup"):
        length = rng.randint(1, min(256, n))
        return Mutation(op, target, offset=rng.randrange(0, n - length + 1), length=length)
    # inner_*: change the decompressed bytes, recompress (exercises the parser, not gzip)
    try:
        raw = gzip.decompress(data)
    except Exception:  # noqa: BLE001
        raw = b""
    m = len(raw)
    if not m:
        return Mutation("flip", target, offset=rng.randrange(n), length=1,
                        xor=rng.randint(1, 255))
    if op == "inner_flip":
        hs = header_size(raw, name[:-3])
        off = rng.randrange(hs) if rng.random() < 0.7 else rng.randrange(m)
        return Mutation(op, target, offset=off, length=1, xor=rng.randint(1, 255))
    return Mutation(op, target, offset=rng.randrange(m))


def apply_mutation(data: bytes, m: Mutation) -> bytes:
    if m.op == "none":
        return data
    b = bytearray(data)
    if m.op in ("truncate", "truncate_tail"):
        return bytes(b[:m.offset])
    if m.op.startswith("flip"):
        b[m.offset] ^= m.xor
        return bytes(b)
    if m.op == "zero":
        b[m.offset:m.offset + m.length] = bytes(m.length)
        return bytes(b)
    if m.op == "dup":
        chunk = b[m.offset:m.offset + m.length]
        return bytes(b[:m.offset + m.length] + chunk + b[m.offset + m.length:])
    if m.op == "value":
        return bytes(b[:m.offset] + m.new + b[m.offset + m.length:])
    raw = bytearray(gzip.decompress(data))
    if m.op == "inner_value":
        raw = raw[:m.offset] + m.new + raw[m.offset + m.length:]
    elif m.op == "inner_flip":
        raw[m.offset] ^= m.xor
    else:
        raw = raw[:m.offset]
    return gzip.compress(bytes(raw), compresslevel=1, mtime=0)


# --------------------------------------------------------------------------- the run plan

@dataclass
class Run:
    kind: str
    index: int
    seed: Seed
    mutation: Mutation
    command: str                 # convert | info | validate
    output: str | None           # output file name (convert)
    extra: list[str] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return f"{self.kind}:{self.index}"


def _out_choices(seed: Seed, kind: str) -> list[str]:
    if seed.oracle == "seg":
        return ["out.nii.gz"] if kind == "seg-fractional" else ["out.seg.nrrd", "out.nii.gz"]
    if seed.oracle == "rt":
        return ["out.seg.nrrd"]
    base = ["out.seg.nrrd", "out.nii.gz", "out.nrrd"]
    if seed.ref is not None:
        base += ["out.dcm", "out.dcm"]
    return base


CONTROL = 1_000_000  # run numbers from here on are controls: seed CONTROL + j, not mutated


def plan(seed_value: int, kind: str, index: int, made: dict[str, Path | str]) -> Run | None:
    rng = random.Random(f"{seed_value}:{kind}:{index}")
    seeds = [s for s in KINDS[kind] if _available(s, made)]
    if index >= CONTROL:  # the unmutated seed: must convert exactly (checks the oracles too)
        j = index - CONTROL
        if j >= len(KINDS[kind]) or KINDS[kind][j] not in seeds:
            return None
        s = KINDS[kind][j]
        extra = ["--contour-fill", "rt-utils"] if s.oracle == "rt" else []
        return Run(kind, index, s, Mutation("none"), "convert", _out_choices(s, kind)[0], extra)
    if not seeds:
        return None
    s = rng.choice(seeds)
    target = "input"
    if s.data is not None and rng.random() < 0.5:
        target = "data"
    path = _resolve(s.data if target == "data" else s.source, made)
    mut = plan_mutation(rng, path.read_bytes(), path.name, target,
                        random.Random(f"{seed_value}:{kind}:{index}:value"))
    r = rng.random()
    if r < 0.15:
        return Run(kind, index, s, mut, "info", None)
    if r < 0.30 and s.oracle in ("seg", "rt"):
        return Run(kind, index, s, mut, "validate", None)
    out = rng.choice(_out_choices(s, kind))
    extra = ["--contour-fill", "rt-utils"] if s.oracle == "rt" else []
    return Run(kind, index, s, mut, "convert", out, extra)


def _resolve(src: Path | str, made: dict[str, Path | str]) -> Path:
    if isinstance(src, str) and src.startswith("made:"):
        p = made.get(src[5:])
        if not isinstance(p, Path):
            raise FileNotFoundError(src)
        return p
    return Path(src)


def _available(s: Seed, made: dict[str, Path | str]) -> bool:
    for src in (s.source, s.data):
        if src is None:
            continue
        try:
            if not _resolve(src, made).is_file():
                return False
        except FileNotFoundError:
            return False
    return True


# --------------------------------------------------------------------------- independent readers

class Refused(Exception):
    """The independent reader refuses the mutant. ``strict``: an integrity check (accepting
    the file is silent corruption); otherwise a library is stricter than segbridge."""

    def __init__(self, reason: str, strict: bool = False) -> None:
        super().__init__(reason)
        self.strict = strict


@dataclass
class Volume:
    """Segments as [x, y, z] arrays (bool masks, or float fractions) + index -> LPS affine."""

    arrays: list[np.ndarray]
    affine: np.ndarray
    shape: tuple[int, int, int]
    fractional: bool = False
    ambiguous: str = ""  # why a mismatch would only be a disagreement


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160] if text else ''}"


def _check_affine(a: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(a)):
        raise Refused(f"{what}: non-finite geometry", strict=True)
    if abs(np.linalg.det(a[:3, :3])) < 1e-12:
        raise Refused(f"{what}: singular geometry (zero spacing or parallel axes)", strict=True)


def _masks_from_layers(layers: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for layer in layers:
        for v in np.unique(layer):
            if v != 0:
                out.append(layer == v)
    return out


def gzip_intact(data: bytes, what: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise Refused(f"{what}: damaged gzip stream ({_first_line(exc)})", strict=True) from None


def read_nifti_volume(path: Path) -> Volume:
    import nibabel as nib

    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip_intact(raw, path.name)
    try:
        img = nib.Nifti1Image.from_bytes(raw) if raw[344:348] in (b"n+1\x00", b"ni1\x00") \
            else nib.load(path)
        hdr = img.header
        need = int(hdr.get_data_offset()) + int(np.prod(img.shape)) * hdr.get_data_dtype().itemsize
    except Exception as exc:  # noqa: BLE001
        raise Refused(f"nibabel: {_first_line(exc)}") from None
    if need > len(raw):
        raise Refused(f"{path.name}: voxel data shorter than the header says ({len(raw)} < "
                      f"{need} bytes)", strict=True)
    try:
        arr = np.asanyarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001
        raise Refused(f"nibabel: {_first_line(exc)}") from None
    affine = LPS_RAS @ img.affine
    _check_affine(affine, path.name)
    if arr.ndim == 3:
        layers = [arr]
    elif arr.ndim == 4:
        layers = [arr[..., i] for i in range(arr.shape[3])]
    else:
        raise Refused(f"nibabel: {arr.ndim}-D data")
    if not all(np.all(np.isfinite(x)) and np.all(x == np.round(x)) for x in layers):
        raise Refused("nibabel: voxel values are not integer labels")
    return Volume(_masks_from_layers(layers), affine, tuple(arr.shape[:3]))


def read_nifti_fractions(path: Path) -> Volume:
    import nibabel as nib

    img = nib.load(path)
    arr = np.asanyarray(img.dataobj)
    layers = [arr] if arr.ndim == 3 else [arr[..., i] for i in range(arr.shape[3])]
    return Volume([x.astype(np.float32) for x in layers], LPS_RAS @ img.affine,
                  tuple(arr.shape[:3]), fractional=True)


def _nrrd_data_bytes(path: Path, header: dict) -> tuple[bytes, str]:
    df = header.get("data file") or header.get("datafile")
    if df:
        p = (path.parent / df)
        return p.read_bytes(), p.name
    raw = path.read_bytes()
    end = raw.find(b"\n\n")
    return raw[end + 2:], path.name


def read_nrrd_volume(path: Path) -> Volume:
    import nrrd

    try:
        header = nrrd.read_header(str(path))
    except Exception as exc:  # noqa: BLE001
        raise Refused(f"pynrrd: {_first_line(exc)}") from None
    df = header.get("data file") or header.get("datafile")
    if df and (os.path.isabs(str(df)) or ".." in Path(str(df)).parts):
        raise Refused(f"{path.name}: data file outside the header's folder", strict=True)
    if header.get("encoding") in ("gzip", "gz"):
        try:
            body, name = _nrrd_data_bytes(path, header)
        except OSError as exc:
            raise Refused(f"pynrrd: {_first_line(exc)}") from None
        gzip_intact(body, name)
    try:
        data, header = nrrd.read(str(path), index_order="F")
    except Exception as exc:  # noqa: BLE001
        raise Refused(f"pynrrd: {_first_line(exc)}") from None
    ambiguous = ""
    sd = header.get("space directions")
    origin = header.get("space origin")
    spatial = list(range(data.ndim))
    if sd is not None:
        sd = np.asarray(sd, float)
        spatial = [i for i in range(data.ndim) if np.all(np.isfinite(sd[i]))]
    if len(spatial) > 3:  # e.g. SlicerRT's 4-D "space dimension 4" files: take x, y, z
        ambiguous = "more than 3 spatial axes"
        spatial = spatial[:3]
    if len(spatial) != 3:
        raise Refused(f"pynrrd: {len(spatial)} spatial axes")
    affine = np.eye(4)
    if sd is not None:
        affine[:3, :3] = np.stack([sd[i][:3] for i in spatial], axis=1)
        if origin is not None:
            affine[:3, 3] = np.asarray(origin, float)[:3]
    else:
        ambiguous = ambiguous or "no space directions"
        sp = header.get("spacings")
        if sp is not None:
            affine[:3, :3] = np.diag([np.asarray(sp, float)[i] for i in spatial])
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space in ("right-anterior-superior", "ras", "scanner-xyz"):
        affine = LPS_RAS @ affine
    elif space not in ("left-posterior-superior", "lps"):
        ambiguous = ambiguous or f"space {space}"
    if "space" not in header:
        ambiguous = ambiguous or "no space field"
    _check_affine(affine, path.name)
    other = [i for i in range(data.ndim) if i not in spatial]
    arr = np.moveaxis(data, other, list(range(len(other)))) if other else data
    shape = tuple(arr.shape[len(other):])
    arr = arr.reshape((-1, *shape))
    layers = list(arr)
    if not all(np.all(np.isfinite(x)) and np.all(x == np.round(x)) for x in layers):
        raise Refused("pynrrd: voxel values are not integer labels")
    return Volume(_masks_from_layers(layers), affine, shape, ambiguous=ambiguous)


# ---- DICOM SEG through pydicom, placed on the grid by our own reading of the standard

@dataclass
class RefGrid:
    affine: np.ndarray           # index (x, y, z) -> LPS
    shape: tuple[int, int, int]  # (nx, ny, nz)
    uids: list[str]              # SOP Instance UID per slice


def reference_grid(files: list[Path]) -> RefGrid:
    """The reference series (unmutated) through pydicom: slices sorted along the normal."""
    import pydicom

    dss = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    iop = np.array(dss[0].ImageOrientationPatient, float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    dss.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, float))))
    ipp = np.array([np.array(d.ImagePositionPatient, float) for d in dss])
    dy, dx = (float(v) for v in dss[0].PixelSpacing)
    a = np.eye(4)
    a[:3, 0], a[:3, 1] = row * dx, col * dy
    a[:3, 2] = (ipp[-1] - ipp[0]) / (len(dss) - 1) if len(dss) > 1 else normal * float(
        getattr(dss[0], "SliceThickness", 1.0) or 1.0)
    a[:3, 3] = ipp[0]
    return RefGrid(a, (int(dss[0].Columns), int(dss[0].Rows), len(dss)),
                   [str(d.SOPInstanceUID) for d in dss])


def _packbits_decode(seg: bytes) -> bytes:
    out, i, n = bytearray(), 0, len(seg)
    while i < n:
        h = seg[i]
        i += 1
        if h < 128:
            out += seg[i:i + h + 1]
            i += h + 1
        elif h > 128:
            if i >= n:
                break
            out += bytes([seg[i]]) * (257 - h)
            i += 1
    return bytes(out)


def _rle_frame(data: bytes, rows: int, cols: int, bits: int) -> np.ndarray:
    import struct

    if len(data) < 64:
        raise Refused("RLE frame shorter than its header", strict=True)
    h = struct.unpack("<16L", data[:64])
    nseg = h[0]
    need = 2 if bits == 16 else 1
    if nseg != need:
        raise Refused(f"RLE frame with {nseg} segments", strict=True)
    offs = list(h[1:nseg + 1]) + [len(data)]
    if any(o < 64 or o > len(data) for o in offs) or offs != sorted(offs):
        raise Refused("RLE segment offsets outside the frame", strict=True)
    planes = [_packbits_decode(data[offs[i]:offs[i + 1]]) for i in range(nseg)]
    n = rows * cols
    if bits == 1:
        p = planes[0]
        if len(p) == n:
            return np.frombuffer(p, np.uint8).reshape(rows, cols) != 0
        if len(p) in ((n + 7) // 8, (n + 7) // 8 + 1):
            return np.unpackbits(np.frombuffer(p, np.uint8), bitorder="little")[:n].reshape(
                rows, cols).astype(bool)
        raise Refused(f"RLE 1-bit frame decodes to {len(p)} bytes", strict=True)
    if any(len(p) not in (n, n + 1) for p in planes):
        raise Refused(f"RLE frame decodes to {[len(p) for p in planes]} bytes, need {n}",
                      strict=True)
    if bits == 8:
        return np.frombuffer(planes[0][:n], np.uint8).reshape(rows, cols)
    hi = np.frombuffer(planes[0][:n], np.uint8).astype(np.uint16)
    lo = np.frombuffer(planes[1][:n], np.uint8).astype(np.uint16)
    return ((hi << 8) | lo).reshape(rows, cols)


def _deflate_frame(data: bytes, rows: int, cols: int, bits: int) -> np.ndarray:
    d = zlib.decompressobj(-15)
    try:
        raw = d.decompress(bytes(data))
    except zlib.error as exc:
        raise Refused(f"deflated frame: {exc}", strict=True) from None
    if not d.eof or d.unused_data not in (b"", b"\x00"):
        raise Refused("deflated frame stream cut short or followed by junk", strict=True)
    n = rows * cols
    if bits == 1:
        if len(raw) == (n + 7) // 8:
            return np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")[:n].reshape(
                rows, cols).astype(bool)
        if len(raw) == n:
            return np.frombuffer(raw, np.uint8).reshape(rows, cols) != 0
        raise Refused(f"deflated 1-bit frame inflates to {len(raw)} bytes", strict=True)
    dt = np.uint8 if bits == 8 else np.dtype("<u2")
    if len(raw) != n * np.dtype(dt).itemsize:
        raise Refused(f"deflated frame inflates to {len(raw)} bytes", strict=True)
    return np.frombuffer(raw, dt).reshape(rows, cols)


def _seg_frames(ds, path: Path) -> np.ndarray:
    from pydicom.encaps import generate_frames

    ts = str(ds.file_meta.TransferSyntaxUID)
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    rows, cols, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
    if n < 1 or rows < 1 or cols < 1:
        raise Refused("no frames")
    if ts in ("1.2.840.10008.1.2.5", "1.2.840.10008.1.2.8.1"):
        try:
            frames = list(generate_frames(ds.PixelData, number_of_frames=n))
        except Exception as exc:  # noqa: BLE001
            raise Refused(f"pydicom fragments: {_first_line(exc)}", strict=True) from None
        if len(frames) != n:
            raise Refused(f"{len(frames)} fragments for {n} frames", strict=True)
        dec = _rle_frame if ts.endswith(".5") else _deflate_frame
        return np.stack([dec(f, rows, cols, bits) for f in frames])
    if ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
              "1.2.840.10008.1.2.1.99"):
        nbytes = len(ds.PixelData)
        need = (n * rows * cols * bits + 7) // 8
        if nbytes < need:
            raise Refused(f"pixel data {nbytes} bytes, frames need {need}", strict=True)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001
        raise Refused(f"pydicom pixel_array: {_first_line(exc)}") from None
    return arr.reshape(n, rows, cols)


def _item(ds, seq: str):
    s = getattr(ds, seq, None)
    return s[0] if s else None


def read_seg_volume(paths: list[Path], ref: RefGrid | None) -> Volume:
    """One or several SEG files (a split series) as segment masks / fractions on ``ref``'s
    grid, or on the grid of the frame positions when there is no reference."""
    import pydicom

    per_segment: dict[tuple[int, int], dict[int, np.ndarray]] = {}
    fractional, ambiguous = False, ""
    grid_aff, grid_shape = None, None
    for fi, path in enumerate(paths):
        raw = path.read_bytes()
        try:
            ds = pydicom.dcmread(path)
            ts = str(ds.file_meta.TransferSyntaxUID)
        except Exception as exc:  # noqa: BLE001
            raise Refused(f"pydicom: {_first_line(exc)}") from None
        if ts == "1.2.840.10008.1.2.1.99":  # deflated data set: the stream must end
            start = raw.find(b"\x02\x00\x10\x00")
            d = zlib.decompressobj(-15)
            meta_len = int(ds.file_meta.get("FileMetaInformationGroupLength", 0) or 0)
            body = raw[132 + 12 + meta_len:] if start > 0 else b""
            try:
                d.decompress(body)
            except zlib.error as exc:
                raise Refused(f"deflated data set: {exc}", strict=True) from None
            if not d.eof:
                raise Refused("deflated data set stream cut short", strict=True)
        try:
            frames = _seg_frames(ds, path)
            stype = str(ds.SegmentationType).upper()
            shared = _item(ds, "SharedFunctionalGroupsSequence")
            pffg = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
            if pffg is None or len(pffg) != len(frames):
                raise Refused("per-frame functional groups do not match the frames")
            o = _item(shared, "PlaneOrientationSequence") if shared else None
            iop = np.array((o or _item(pffg[0], "PlaneOrientationSequence"))
                           .ImageOrientationPatient, float)
            pm = _item(shared, "PixelMeasuresSequence") if shared else None
            pm = pm or _item(pffg[0], "PixelMeasuresSequence")
            dy, dx = (float(v) for v in pm.PixelSpacing)
            described = {int(s.SegmentNumber): s for s in ds.SegmentSequence}
            background = set()
            if stype == "LABELMAP":
                ppv = getattr(ds, "PixelPaddingValue", None)
                if ppv is not None:
                    background.add(int(ppv))
                for num, s in described.items():
                    t = _item(s, "SegmentedPropertyTypeCodeSequence")
                    if str(getattr(s, "SegmentLabel", "")).strip().lower() == "background" or (
                            t is not None and str(t.CodeValue) == "125040"):
                        background.add(num)
                if 0 not in described:
                    background.add(0)
            maxfrac = float(getattr(ds, "MaximumFractionalValue", 255) or 255)
            fractional = stype == "FRACTIONAL"
            frame_info = []
            for k, item in enumerate(pffg):
                pp = _item(item, "PlanePositionSequence") or (
                    _item(shared, "PlanePositionSequence") if shared else None)
                # a frame without a position can still be placed by its source image
                ipp = np.array(pp.ImagePositionPatient, float) if pp is not None and \
                    "ImagePositionPatient" in pp else None
                si = _item(item, "SegmentIdentificationSequence") or (
                    _item(shared, "SegmentIdentificationSequence") if shared else None)
                segno = int(si.ReferencedSegmentNumber) if si is not None and \
                    stype != "LABELMAP" else None
                uid = None
                der = _item(item, "DerivationImageSequence")
                src = _item(der, "SourceImageSequence") if der is not None else None
                if src is not None:
                    uid = str(src.ReferencedSOPInstanceUID)
                frame_info.append((k, ipp, segno, uid))
        except Refused:
            raise
        except Exception as exc:  # noqa: BLE001
            raise Refused(f"pydicom: {_first_line(exc)}") from None
        if not np.all(np.isfinite(iop)) or not np.all(np.isfinite([dx, dy])):
            raise Refused("non-finite geometry", strict=True)
        row, col = iop[:3], iop[3:]
        normal = np.cross(row, col)
        if ref is not None:
            grid_aff, grid_shape = ref.affine, ref.shape
            inv = np.linalg.inv(ref.affine)
        else:
            if fi == 0:
                if any(p is None for _, p, _, _ in frame_info):
                    raise Refused("a frame has no position (and there is no reference)")
                s_vals = sorted({round(float(np.dot(normal, p)), 3) for _, p, _, _ in frame_info})
                if not np.all(np.isfinite(s_vals)):
                    raise Refused("non-finite frame position", strict=True)
                step = min(np.diff(s_vals)) if len(s_vals) > 1 else float(
                    getattr(_item(shared, "PixelMeasuresSequence"), "SpacingBetweenSlices",
                            1.0) or 1.0)
                gaps = np.diff(s_vals) / step if len(s_vals) > 1 else np.array([])
                if np.any(np.abs(gaps - np.round(gaps)) > 0.05):
                    ambiguous = "uneven frame positions"
                nz = int(round((s_vals[-1] - s_vals[0]) / step)) + 1 if len(s_vals) > 1 else 1
                first = min((p for _, p, _, _ in frame_info), key=lambda p: float(np.dot(normal, p)))
                a = np.eye(4)
                a[:3, 0], a[:3, 1], a[:3, 2], a[:3, 3] = row * dx, col * dy, normal * step, first
                grid_aff, grid_shape = a, (int(ds.Columns), int(ds.Rows), nz)
            inv = np.linalg.inv(grid_aff)
        if (int(ds.Columns), int(ds.Rows)) != grid_shape[:2]:
            raise Refused("frame size differs from the grid")
        for k, ipp, segno, uid in frame_info:
            z = None
            if ref is not None and uid in ref.uids:
                z = ref.uids.index(uid)
            else:
                if ipp is None:
                    raise Refused(f"frame {k + 1} has no position and no known source image")
                if not np.all(np.isfinite(ipp)):
                    raise Refused("non-finite frame position", strict=True)
                idx = inv @ np.append(ipp, 1.0)
                zr = int(round(idx[2]))
                if abs(idx[2] - zr) > 0.05 or abs(idx[0]) > 0.05 or abs(idx[1]) > 0.05 or \
                        not 0 <= zr < grid_shape[2]:
                    raise Refused(f"frame {k + 1} is on no slice of the grid")
                z = zr
            f = frames[k]
            if stype == "LABELMAP":
                for v in np.unique(f):
                    v = int(v)
                    if v in background:
                        continue
                    m = per_segment.setdefault((fi, v), {})
                    m[z] = m.get(z, np.zeros(f.shape, bool)) | (f == v)
                continue
            if segno not in described:
                ambiguous = ambiguous or f"frame for undescribed segment {segno}"
            m = per_segment.setdefault((fi, segno), {})
            if fractional:
                if z in m:
                    ambiguous = ambiguous or "two frames for one segment and slice"
                m[z] = f.astype(np.float32) / np.float32(maxfrac)
            else:
                m[z] = m.get(z, np.zeros(f.shape, bool)) | (f != 0)
        # described segments without frames are empty: they vanish from the comparison
    nx, ny, nz = grid_shape
    arrays = []
    for _key, slices in per_segment.items():
        vol = np.zeros((nx, ny, nz), np.float32 if fractional else bool)
        for z, fr in slices.items():
            vol[:, :, z] = fr.T
        arrays.append(vol)
    return Volume(arrays, grid_aff, grid_shape, fractional=fractional, ambiguous=ambiguous)


def read_rt_volume(path: Path, ref_files: list[Path], ref: RefGrid) -> Volume:
    """rt-utils' masks for every ROI (what --contour-fill rt-utils must reproduce)."""
    try:
        from rt_utils import RTStructBuilder

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rts = RTStructBuilder.create_from(str(ref_files[0].parent), str(path),
                                              warn_only=True)
            order = [str(d.SOPInstanceUID) for d in rts.series_data]
            arrays = []
            for name in rts.get_roi_names():
                try:
                    m = rts.get_roi_mask_by_name(name)  # [rows, cols, slice]
                except Exception as exc:  # noqa: BLE001
                    msg = _first_line(exc)
                    if "no contour" in msg.lower() or "not found" in msg.lower():
                        continue
                    raise
                vol = np.zeros(ref.shape, bool)
                for j, uid in enumerate(order):
                    vol[:, :, ref.uids.index(uid)] = m[:, :, j].T
                arrays.append(vol)
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001
        raise Refused(f"rt-utils: {_first_line(exc)}") from None
    return Volume(arrays, ref.affine, ref.shape, ambiguous=_foreign_contour_images(path, ref))


def _foreign_contour_images(path: Path, ref: RefGrid) -> str:
    """rt-utils finds a contour's slice by its ContourImageSequence UID only, so a contour naming
    an image outside the series vanishes there; by the standard the contour's own coordinates
    place it (segbridge does, with a warning). Such a file has no single right answer."""
    import pydicom

    ds = pydicom.dcmread(path, force=True)
    for roi in ds.get("ROIContourSequence") or []:
        for c in roi.get("ContourSequence") or []:
            for im in c.get("ContourImageSequence") or []:
                if str(im.get("ReferencedSOPInstanceUID", "")) not in ref.uids:
                    return ("a contour names an image outside the series (rt-utils drops it, "
                            "segbridge places it by its plane and warns)")
    return ""


def read_output(out: Path, outdir: Path, ref: RefGrid | None, fractional: bool) -> Volume:
    name = out.name
    if name.endswith(".dcm"):
        parts = sorted(outdir.glob("out*.dcm"), key=lambda p: (len(p.name), p.name))
        return read_seg_volume(parts, ref)
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti_fractions(out) if fractional else read_nifti_volume(out)
    return read_nrrd_volume(out)


def compare(expected: Volume, observed: Volume) -> str | None:
    """None when both hold the same non-empty segments voxel for voxel, else what differs."""
    m = np.linalg.inv(expected.affine) @ observed.affine
    if not np.all(np.isfinite(m)):
        return "output geometry is not finite"
    for j, size in enumerate(observed.shape):
        # a one-voxel-thick axis has no spacing of its own (one slice: thickness, 1 mm, ...)
        norm = np.linalg.norm(m[:3, j])
        if size == 1 and norm > 0:
            m[:3, j] /= norm
    rot = m[:3, :3]
    r = np.round(rot)
    if np.abs(rot - r).max() > 0.01 or sorted(np.abs(r).sum(axis=0)) != [1, 1, 1] or \
            sorted(np.abs(r).sum(axis=1)) != [1, 1, 1]:
        return f"output grid is not the input lattice (index map {np.round(rot, 3).tolist()})"
    t = m[:3, 3]
    if np.abs(t - np.round(t)).max() > 0.05:
        return f"output grid origin is off the input lattice by {np.round(t, 3).tolist()} voxels"

    def keys(vol: Volume, mapped: bool) -> Counter:
        c: Counter = Counter()
        for a in vol.arrays:
            idx = np.argwhere(a != 0)
            if not len(idx):
                continue
            vals = a[tuple(idx.T)] if vol.fractional else None
            if mapped:
                idx = np.rint(idx @ r.T + np.round(t)).astype(np.int64)
            if (idx < 0).any() or (idx >= np.array(expected.shape)).any():
                c["<voxels outside the input grid>"] += 1
                continue
            lin = np.ravel_multi_index(tuple(idx.T), expected.shape)
            order = np.argsort(lin)
            h = hashlib.sha1(lin[order].tobytes())
            if vals is not None:
                h.update(np.asarray(vals, np.float32)[order].tobytes())
            c[h.hexdigest()] += 1
        return c

    ke, ko = keys(expected, False), keys(observed, True)
    if ke == ko:
        return None
    ne, no = sum(ke.values()), sum(ko.values())
    common = sum((ke & ko).values())
    return (f"segments differ: input has {ne} non-empty, output {no}, {common} equal "
            f"voxel for voxel")


# --------------------------------------------------------------------------- running one case

@dataclass
class Result:
    run: Run
    outcome: str                 # clean_error | exact | disagreement | failure | ok
    detail: str = ""
    returncode: int | None = None
    stderr: str = ""
    cause: str = ""              # grouping key for failures / disagreements
    seconds: float = 0.0


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _snapshot(*folders: Path) -> dict[str, str]:
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                out[str(p.relative_to(folder.parent))] = _sha(p)
    return out


def layout(run: Run, made: dict[str, Path | str], where: Path) -> Path:
    """Fresh folder: in/ (the mutant and its detached data), ref/ (the reference series),
    out/. Returns the mutant's path."""
    inp, refd, outd = where / "in", where / "ref", where / "out"
    for d in (inp, refd, outd):
        d.mkdir(parents=True)
    src = _resolve(run.seed.source, made)
    main = inp / src.name
    data = src.read_bytes()
    if run.mutation.target == "input":
        data = apply_mutation(data, run.mutation)
    main.write_bytes(data)
    if run.seed.data is not None:
        dsrc = _resolve(run.seed.data, made)
        ddata = dsrc.read_bytes()
        if run.mutation.target == "data":
            ddata = apply_mutation(ddata, run.mutation)
        (inp / dsrc.name).write_bytes(ddata)
    side = sidecar_of(src)
    if side is not None:  # a segbridge volume output comes with its dcmqi JSON sidecar
        shutil.copyfile(side, inp / side.name)
    if run.seed.ref is not None:
        for f in REFS[run.seed.ref]:
            shutil.copyfile(f, refd / f.name)
    return main


def sidecar_of(path: Path) -> Path | None:
    """The dcmqi JSON sidecar segbridge writes beside a volume (NAME.json), if there is one."""
    name = path.name
    for suffix in (".seg.nrrd", ".nii.gz", ".nii", ".nrrd", ".nhdr"):
        if name.endswith(suffix):
            side = path.with_name(name[: -len(suffix)] + ".json")
            return side if side.is_file() else None
    return None


def execute(run: Run, made: dict[str, Path | str], base: Path, keep: Path | None) -> Result:
    where = Path(tempfile.mkdtemp(prefix=f"{run.kind}-{run.index}-", dir=base))
    t0 = time.monotonic()
    try:
        res = _execute(run, made, where)
    except Exception as exc:  # noqa: BLE001 - a bug in the fuzzer itself is a failure too
        res = Result(run, "failure", f"fuzzer error: {_first_line(exc)}",
                     cause=f"fuzzer error {type(exc).__name__}")
    res.seconds = time.monotonic() - t0
    if keep is not None and res.outcome in ("failure", "disagreement"):
        dest = keep / f"{res.outcome}-{run.kind}-{run.index}"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(where, dest)
        shutil.rmtree(dest / "out", ignore_errors=True)
        (dest / "out").mkdir(exist_ok=True)
        argv = [a.replace(str(where) + "/", "") for a in command(run, where)]
        (dest / "repro.sh").write_text(
            "#!/bin/sh\n# " + run.tag + ": " + run.seed.name + ", " + run.mutation.describe()
            + "\n# " + res.detail.replace("\n", " ")[:400] + "\ncd \"$(dirname \"$0\")\"\n"
            + "SEGBRIDGE_DEBUG=1 python -m segbridge " + " ".join(_q(a) for a in argv) + "\n")
    shutil.rmtree(where, ignore_errors=True)
    return res


def _q(a: str) -> str:
    return a if re.fullmatch(r"[\w./:=,+-]+", a) else "'" + a.replace("'", "'\\''") + "'"


def command(run: Run, where: Path) -> list[str]:
    """The CLI argv of a run laid out in ``where``."""
    main = where / "in" / _name_of(run.seed.source)
    refd, outd = where / "ref", where / "out"
    ref_args = ["-r", str(refd)] if run.seed.ref is not None else []
    if run.command != "convert":
        return [run.command, str(main), *ref_args]
    argv = ["convert", str(main), "-o", str(outd / run.output), *run.extra]
    if not (run.seed.oracle in ("nifti", "nrrd") and run.output != "out.dcm"):
        argv += ref_args  # volumes are converted to volumes without a reference
    return argv


def _name_of(src: Path | str) -> str:
    return Path(src[5:] if isinstance(src, str) and src.startswith("made:") else src).name


def _names_file(line: str, main: Path) -> bool:
    """The line names the mutant (or, for a detached header, its data file)."""
    names = [p.name for p in main.parent.iterdir()] if main.parent.is_dir() else [main.name]
    return any(n in line for n in names if not n.endswith(".json")) or main.name in line


def _execute(run: Run, made: dict[str, Path | str], where: Path) -> Result:
    main = layout(run, made, where)
    argv = command(run, where)
    inp, refd, outd = where / "in", where / "ref", where / "out"
    before = _snapshot(inp, refd)
    try:
        proc = _cli(argv, cwd=where)
    except subprocess.TimeoutExpired:
        return Result(run, "failure", f"timeout after {TIMEOUT:.0f} s", cause="timeout")
    after = _snapshot(inp, refd)
    rc, err = proc.returncode, proc.stderr
    lines = [x for x in err.splitlines() if x.strip()]
    r = Result(run, "", returncode=rc, stderr=err)
    leftovers = [p.name for p in outd.rglob("*") if TMP_NAME.search(p.name)]
    leftovers += [p.name for p in where.iterdir() if p.name not in ("in", "ref", "out")]
    if before != after:
        changed = sorted(set(before.items()) ^ set(after.items()))
        r.outcome, r.cause = "failure", "changed or added an input file"
        r.detail = f"inputs changed: {sorted({c[0] for c in changed})[:5]}"
        return r
    if leftovers:
        r.outcome, r.cause = "failure", "left a temporary file"
        r.detail = f"left {leftovers[:5]}"
        return r
    if rc < 0:
        r.outcome, r.cause, r.detail = "failure", f"killed by signal {-rc}", err[-300:]
        return r
    if "Traceback" in err or "internal error" in err or rc not in (0, 1, 2):
        r.outcome = "failure"
        r.detail = (lines[-1] if lines else f"exit {rc}")[:300]
        r.cause = "internal error"
        return r
    if rc != 0:
        written = [p.name for p in outd.rglob("*")]
        if written:
            r.outcome, r.cause = "failure", "partial output after an error"
            r.detail = f"exit {rc} but left {written[:5]}"
            return r
        if run.command == "validate" and rc == 1 and not lines:
            last = proc.stdout.strip().splitlines()[-1:] or [""]
            if _names_file(last[0], main) and " errors" in last[0]:
                r.outcome, r.detail = "clean_error", last[0][:200]
                return r
        if len(lines) != 1:
            r.outcome, r.cause = "failure", "error message is not one line"
            r.detail = " | ".join(lines)[:400]
            return r
        if not _names_file(lines[0], main):
            r.outcome, r.cause = "failure", "error message does not name the file"
            r.detail = lines[0][:300]
            return r
        r.outcome, r.detail = "clean_error", lines[0][:300]
        return r
    if run.command != "convert":
        r.outcome = "ok"
        return r
    return _check_output(run, r, main, where)


def _check_output(run: Run, r: Result, main: Path, where: Path) -> Result:
    outd = where / "out"
    out = outd / run.output
    if not out.exists():
        r.outcome, r.cause, r.detail = "failure", "exit 0 without the output", ""
        return r
    ref_files = sorted((where / "ref").iterdir()) if run.seed.ref is not None else []
    ref = reference_grid(ref_files) if ref_files else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if run.seed.oracle == "seg":
                expected = read_seg_volume([main], ref if run.seed.ref else None)
                reader = "pydicom"
            elif run.seed.oracle == "rt":
                expected = read_rt_volume(main, ref_files, ref)
                reader = "rt-utils"
            elif run.seed.oracle == "nifti":
                expected = read_nifti_volume(main)
                reader = "nibabel"
            else:
                expected = read_nrrd_volume(main)
                reader = "pynrrd"
        except Refused as exc:
            r.detail = str(exc)
            if exc.strict:
                r.outcome = "failure"
                r.cause = f"accepted a damaged {run.kind} input: " + _generic(
                    str(exc).replace(main.name + ": ", ""))
            else:
                r.outcome = "disagreement"
                r.cause = f"accepted what {str(exc).split(':')[0]} refuses: " + _generic(
                    str(exc).split(":", 1)[-1])
                said = [x for x in r.stderr.splitlines() if x.startswith("warning:")]
                if said:  # a documented tolerance says so on stderr
                    r.detail += f"; segbridge said: {said[0][:200]}"
            return r
        try:
            observed = read_output(out, outd, ref, expected.fractional)
        except Refused as exc:
            r.outcome, r.cause = "failure", "output unreadable"
            r.detail = f"{out.name}: {exc}"
            return r
    diff = compare(expected, observed)
    if diff is None:
        r.outcome = "exact"
        return r
    r.detail = f"{reader} vs output {out.name}: {diff}"
    if expected.ambiguous or observed.ambiguous:
        r.outcome = "disagreement"
        r.cause = f"output differs where the input is ambiguous ({expected.ambiguous or observed.ambiguous})"
    else:
        r.outcome, r.cause = "failure", f"output differs from {reader} ({_generic(diff)})"
    return r


def _generic(text: str) -> str:
    """A message with its numbers taken out, to group runs by cause."""
    return re.sub(r"\d+", "N", text.strip())[:120]


# --------------------------------------------------------------------------- tracebacks

def traceback_cause(run: Run, made: dict[str, Path | str], base: Path) -> str:
    """Rerun with SEGBRIDGE_DEBUG=1: exception type + innermost segbridge file:function."""
    where = Path(tempfile.mkdtemp(prefix="tb-", dir=base))
    try:
        layout(run, made, where)
        argv = command(run, where)
        try:
            proc = _cli(argv, cwd=where, env={"SEGBRIDGE_DEBUG": "1"})
        except subprocess.TimeoutExpired:
            return "timeout"
        tb = proc.stderr
        frames = re.findall(r'File "([^"]*segbridge[^"]*)", line (\d+), in (\S+)', tb)
        last = [x for x in tb.strip().splitlines() if x.strip()]
        exc = last[-1].split(":")[0] if last else "?"
        if frames:
            f, line, func = frames[-1]
            rel = f.split("/src/")[-1] if "/src/" in f else Path(f).name
            return f"{exc} in {rel}:{func}"
        return f"{exc} (no segbridge frame)"
    finally:
        shutil.rmtree(where, ignore_errors=True)


# --------------------------------------------------------------------------- the session

@dataclass
class Session:
    results: list[Result]
    made: dict[str, Path | str]
    seconds: float

    def counts(self) -> dict[str, Counter]:
        c: dict[str, Counter] = defaultdict(Counter)
        for r in self.results:
            if r.run.index >= CONTROL:
                continue
            c[r.run.kind]["runs"] += 1
            c[r.run.kind][r.outcome] += 1
        return c

    @property
    def controls(self) -> list[Result]:
        return [r for r in self.results if r.run.index >= CONTROL]

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.outcome == "failure"]

    @property
    def disagreements(self) -> list[Result]:
        return [r for r in self.results if r.outcome == "disagreement"]

    def table(self) -> str:
        cols = ["runs", "clean_error", "exact", "ok", "disagreement", "failure"]
        head = ["kind", "runs", "clean errors", "exact outputs", "other exit 0",
                "disagreements", "failures"]
        rows = []
        total: Counter = Counter()
        for kind, c in sorted(self.counts().items()):
            rows.append([kind] + [str(c[k]) for k in cols])
            total.update({k: c[k] for k in cols})
        rows.append(["TOTAL"] + [str(total[k]) for k in cols])
        w = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        fmt = "  ".join(f"{{:<{w[0]}}}" if i == 0 else f"{{:>{w[i]}}}" for i in range(len(w)))
        return "\n".join([fmt.format(*head), fmt.format(*("-" * x for x in w))]
                         + [fmt.format(*r) for r in rows])

    def groups(self, outcome: str) -> dict[str, list[Result]]:
        g: dict[str, list[Result]] = defaultdict(list)
        for r in self.results:
            if r.outcome == outcome:
                g[r.cause].append(r)
        return dict(sorted(g.items(), key=lambda kv: -len(kv[1])))


def run_session(seed: int, runs: int, kinds: list[str], jobs: int = 2, keep: Path | None = None,
                only: list[tuple[str, int]] | None = None, progress=None,
                explain: bool = True, controls: bool = False) -> Session:
    """``runs`` mutants per kind (or the ``only`` ones); with ``controls``, also every seed
    unmutated (each must give an exact output: proves the oracles see real segments)."""
    t0 = time.monotonic()
    warnings.simplefilter("ignore")
    base = Path(tempfile.mkdtemp(prefix="segbridge-fuzz-"))
    try:
        keys = {str(src)[5:] for k in kinds for s in KINDS[k] for src in (s.source, s.data)
                if isinstance(src, str) and src.startswith("made:")}
        made = make_seeds(base / "seeds", {k for k in keys if k in MADE})
        todo = only or [(k, i) for k in kinds for i in range(runs)]
        if controls and not only:
            todo += [(k, CONTROL + j) for k in kinds for j in range(len(KINDS[k]))]
        plans = [p for k, i in todo if (p := plan(seed, k, i, made)) is not None]
        results: list[Result] = []
        lock = threading.Lock()

        def one(p: Run) -> Result:
            res = execute(p, made, base, keep)
            with lock:
                results.append(res)
                if progress:
                    progress(res, len(results), len(plans))
            return res

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, plans))
        if explain:  # group internal errors by exception and segbridge function
            seen: dict[tuple, str] = {}
            for r in results:
                if r.outcome == "failure" and r.cause == "internal error":
                    key = (r.run.kind, r.detail.split(":")[0:3].__str__())
                    if key not in seen:
                        seen[key] = "internal error: " + traceback_cause(r.run, made, base)
                    r.cause = seen[key]
        results.sort(key=lambda r: (r.run.kind, r.run.index))
        return Session(results, made, time.monotonic() - t0)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def report(session: Session, seed: int, out=sys.stdout) -> None:
    p = lambda *a: print(*a, file=out)  # noqa: E731
    bad = {k: v for k, v in session.made.items() if not isinstance(v, Path)}
    for k, v in bad.items():
        p(f"seed not made (skipped): {k}: {v}")
    p(session.table())
    p(f"({len(session.results)} runs in {session.seconds:.0f} s, --seed {seed})")
    if session.controls:
        bad = [r for r in session.controls if r.outcome != "exact"]
        p(f"controls (unmutated seeds): {len(session.controls) - len(bad)} of "
          f"{len(session.controls)} exact")
        for r in bad:
            p(f"  NOT EXACT: {r.run.tag} {r.run.seed.name} -> {r.outcome}: {r.detail[:200]}")
    for outcome in ("failure", "disagreement"):
        groups = session.groups(outcome)
        if not groups:
            continue
        p(f"\n{outcome}s by cause:")
        for cause, rs in groups.items():
            ex = rs[0]
            p(f"  [{len(rs)}] {cause}")
            p(f"      e.g. --seed {seed} --replay {ex.run.tag}  ({ex.run.seed.name}, "
              f"{ex.run.command} {ex.run.output or ''}, {ex.run.mutation.describe()})")
            p(f"      {ex.detail[:300]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--runs", type=int, default=100, help="runs per kind")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help=f"comma-separated, from: {', '.join(KINDS)}")
    ap.add_argument("--jobs", type=int, default=2, help="CLI processes at once")
    ap.add_argument("--keep", type=Path, help="copy failing/disagreeing runs here (with "
                                             "repro.sh)")
    ap.add_argument("--replay", action="append", default=[],
                    help="KIND:INDEX of one run to redo (repeatable)")
    ap.add_argument("--controls", action="store_true",
                    help=f"also convert every seed unmutated (runs {CONTROL}+j; must be exact)")
    ap.add_argument("--verbose", "-v", action="store_true", help="print every run")
    args = ap.parse_args(argv)
    import signal

    # a terminated session still removes its temporary folder (run_session's finally)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        ap.error(f"unknown kind(s): {', '.join(unknown)}")
    only = None
    if args.replay:
        only = [(x.rsplit(":", 1)[0], int(x.rsplit(":", 1)[1])) for x in args.replay]
        kinds = sorted({k for k, _ in only})
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)

    def progress(res: Result, done: int, total: int) -> None:
        if args.verbose or args.replay:
            print(f"[{done}/{total}] {res.run.tag} {res.run.seed.name} {res.run.command} "
                  f"{res.run.output or ''} {res.run.mutation.describe()} -> {res.outcome} "
                  f"(exit {res.returncode}) {res.detail[:200]}", flush=True)
        elif done % 50 == 0:
            print(f"  {done}/{total} runs", file=sys.stderr, flush=True)

    session = run_session(args.seed, args.runs, kinds, jobs=args.jobs, keep=args.keep,
                          only=only, progress=progress, controls=args.controls)
    report(session, args.seed)
    unmade = [k for k, v in session.made.items() if not isinstance(v, Path)]
    inexact = [r for r in session.controls if r.outcome != "exact"]
    return 1 if session.failures or unmade or inexact else 0


if __name__ == "__main__":
    sys.exit(main())
