"""Hostile DICOM SEGs (issue 11, classes 1 and 5): every compressed frame is checked to its end or
refused with one line naming the file and the frame; broken per-frame geometry is one line.

Hostile files are copies of real SEGs (dcmqi, pydicom-data) and of segbridge's own output in every
compression, cut short or changed byte by byte in ``tmp_path``. A mutation either gives exit 1
with one line naming the file, or (when no check can see it, e.g. inside native pixel values) the
frames equal what an independent reader (pydicom's decoders, zlib, pylibjpeg-rle) gives.

The seeded sweep takes a fixed sample; ``SEGBRIDGE_FUZZ_N=200 python -m pytest -q
tests/test_hostile_dicom.py -k sweep`` runs a longer one.
"""

from __future__ import annotations

import os
import random
import struct
import warnings
import zlib

import numpy as np
import pydicom
import pytest
from conftest import CT3, DCMQI, PYD
from pydicom.encaps import generate_frames
from test_cli import assert_clean_failure, run

import segbridge as sb
from segbridge.dicom.codecs import COMPRESSIONS, codec_for
from segbridge.dicom.segfile import SegFile
from segbridge.errors import InvalidInputError, SegbridgeError

RLE, JLS, J2K, DFL = (COMPRESSIONS[n].uid for n in ("rle", "jpegls", "jpeg2000", "deflate-frame"))


def _mask(rows: int, cols: int, bits: int) -> np.ndarray:
    rng = np.random.default_rng(rows * 1000 + cols + bits)
    top = {1: 1, 8: 200, 16: 40000}[bits]
    arr = np.zeros((rows, cols), np.uint16 if bits == 16 else np.uint8)
    arr[rows // 4:rows // 2, cols // 3:cols // 2] = top
    arr[rng.random((rows, cols)) < 0.05] = 1
    return arr


def _refused(uid: str, data: bytes, rows: int, cols: int, bits: int, *needles: str) -> None:
    with pytest.raises(InvalidInputError) as exc:
        codec_for(uid).decode(data, rows, cols, bits)
    msg = str(exc.value)
    assert "\n" not in msg and "()" not in msg
    for n in needles:
        assert n in msg, msg


# ---------------------------------------------------------------------------------------------
# codecs: each damaged stream is refused (the old decoders took what came out)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [1, 8, 16])
def test_rle_segment_must_decode_to_exactly_one_frame(bits):
    frame = _mask(40, 48, bits)
    enc = codec_for(RLE).encode(frame, bits)
    # the same stream read as a smaller frame: the segment decodes to more bytes than it needs
    _refused(RLE, enc, 40, 40, bits, "expected")
    # and as a larger one: fewer bytes than it needs
    _refused(RLE, enc, 41, 48, bits, "expected")


def test_rle_header_is_checked():
    frame = _mask(32, 32, 8)
    enc = bytearray(codec_for(RLE).encode(frame, 8))
    two = bytearray(enc)
    two[0:4] = struct.pack("<L", 2)
    two[8:12] = struct.pack("<L", 100)
    _refused(RLE, bytes(two), 32, 32, 8, "declares 2 segments")
    beyond = bytearray(enc)
    beyond[4:8] = struct.pack("<L", len(enc) + 10)
    _refused(RLE, bytes(beyond), 32, 32, 8, "offsets")
    one16 = codec_for(RLE).encode(frame, 8)
    _refused(RLE, one16, 32, 32, 16, "need 2")
    _refused(RLE, bytes(enc[:40]), 32, 32, 8, "64-byte header")


def test_rle_one_bit_frame_with_other_values_is_refused():
    frame = _mask(16, 16, 8)
    frame[3, 3] = 5
    enc = codec_for(RLE).encode(frame, 8)
    _refused(RLE, enc, 16, 16, 1, "pixel value")


@pytest.mark.parametrize("bits", [8, 16])
def test_jpeg_ls_frame_of_another_shape_is_refused(bits):
    frame = _mask(40, 40, bits)
    enc = codec_for(JLS).encode(frame, bits)
    _refused(JLS, enc, 20, 80, bits, "40x40", "expected one component of 20x80")
    _refused(JLS, enc[:-2], 40, 40, bits, "EOI")


@pytest.mark.parametrize("bits", [1, 8, 16])
def test_jpeg_2000_frame_of_another_shape_is_refused(bits):
    frame = _mask(40, 40, bits)
    enc = codec_for(J2K).encode(frame, bits)
    # same number of pixels, other shape: the old decoder reshaped it silently
    _refused(J2K, enc, 32, 50, bits, "40x40", "expected 32x50")
    _refused(J2K, enc[:-2], 40, 40, bits, "EOC")


def test_jpeg_2000_values_wider_than_bits_allocated_are_refused():
    enc = codec_for(J2K).encode(_mask(40, 40, 16), 16)
    _refused(J2K, enc, 40, 40, 8, "more than 8 bits")


@pytest.mark.parametrize("bits", [1, 8, 16])
def test_deflated_frame_is_checked_to_its_end(bits):
    frame = _mask(24, 40, bits)
    enc = codec_for(DFL).encode(frame, bits)
    _refused(DFL, enc[: len(enc) // 2], 24, 40, bits, "cut short")
    _refused(DFL, enc + b"garbage!", 24, 40, bits, "after the end")
    # one NUL pads an odd stream to even length (PS3.5 A.4): accepted
    out = codec_for(DFL).decode(enc + b"\x00", 24, 40, bits)
    np.testing.assert_array_equal(out, frame)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw = np.ascontiguousarray(frame, np.uint16 if bits == 16 else np.uint8).tobytes()
    longer = c.compress(raw + raw[:64]) + c.flush()
    _refused(DFL, longer, 24, 40, bits)


def test_deflate_bomb_is_refused_without_inflating_it():
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = c.compress(bytes(200_000_000)) + c.flush()
    _refused(DFL, bomb, 16, 16, 8, "more than the 256 bytes")


# ---------------------------------------------------------------------------------------------
# files: the same damage in real SEGs, through the CLI
# ---------------------------------------------------------------------------------------------
_ITEM, _SEQ_DELIM = b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0"


def _reencapsulate(src, dst, change) -> None:
    """Copy a SEG whose encapsulated pixel data holds one fragment per frame, each frame passed
    through ``change(k, bytes)``; the Basic Offset Table (if any) is rebuilt to fit. Byte
    surgery, because pydicom cannot save every transfer syntax (Deflated Image Frame)."""
    raw = src.read_bytes()
    start = raw.rfind(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff") + 12
    pos, items = start, []
    while raw[pos:pos + 4] == _ITEM:
        (length,) = struct.unpack_from("<L", raw, pos + 4)
        items.append(raw[pos + 8:pos + 8 + length])
        pos += 8 + length
    assert raw[pos:pos + 4] == _SEQ_DELIM
    frames = [change(k, f) for k, f in enumerate(items[1:])]
    frames = [f + b"\x00" if len(f) % 2 else f for f in frames]
    offsets, at = [], 0
    for f in frames:
        offsets.append(at)
        at += 8 + len(f)
    bot = struct.pack(f"<{len(frames)}L", *offsets) if items[0] else b""
    body = b"".join(_ITEM + struct.pack("<L", len(x)) + x for x in [bot, *frames])
    dst.write_bytes(raw[:start] + body + raw[pos:])


def _assert_refused(tmp_path, bad, *needles):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    res = run("convert", bad, "-o", out / "x.nii.gz", "-r", CT3)
    assert "internal error" not in res.stderr
    assert res.returncode == 1, res.stderr
    assert_clean_failure(res, out, str(bad), *needles)


def test_rle_fragment_with_garbage_tail_is_refused(tmp_path):
    bad = tmp_path / "rle-tail.dcm"
    _reencapsulate(PYD / "liver_rle.dcm", bad,
                   lambda k, f: f + b"\x02\x01\x01\x01" * 4 if k == 1 else f)
    _assert_refused(tmp_path, bad, "frame 2", "decodes to 32780 values")


def test_basic_offset_table_must_point_at_the_fragments(tmp_path):
    raw = bytearray((PYD / "liver_rle.dcm").read_bytes())
    i = raw.rfind(b"\xe0\x7f\x10\x00")
    bot_at = i + 12 + 8  # element header (12) + BOT item header (8)
    assert struct.unpack_from("<3L", raw, bot_at)[0] == 0
    raw[bot_at + 4:bot_at + 8] = struct.pack("<L", 6)  # frame 2 "starts" inside frame 1
    bad = tmp_path / "bot.dcm"
    bad.write_bytes(bytes(raw))
    _assert_refused(tmp_path, bad, "Basic Offset Table")


@pytest.mark.parametrize("comp", ["rle", "jpegls", "jpeg2000", "deflate-frame"])
def test_encapsulated_pixel_data_without_its_delimiter_is_truncated(tmp_path, comp, ct3):
    seg = sb.read(DCMQI / "liver.dcm", reference=ct3)
    good = tmp_path / f"good-{comp}.dcm"
    sb.write(seg, good, type="labelmap", compression=comp, profile="archive")
    raw = good.read_bytes()
    assert raw.endswith(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    bad = tmp_path / f"cut-{comp}.dcm"
    bad.write_bytes(raw[:-8])
    _assert_refused(tmp_path, bad, "truncated")


def test_deflated_frame_with_trailing_garbage_is_refused(tmp_path):
    bad = tmp_path / "dfl.dcm"
    _reencapsulate(PYD / "liver_deflate.dcm", bad, lambda k, f: f + b"tail" if k == 2 else f)
    _assert_refused(tmp_path, bad, "frame 3", "after the end of its stream")


def test_jpeg_2000_frame_of_another_size_is_refused(tmp_path, ct3):
    seg = sb.read(DCMQI / "liver.dcm", reference=ct3)
    good = tmp_path / "j2k.dcm"
    sb.write(seg, good, type="labelmap", compression="jpeg2000", profile="archive")
    other = codec_for(J2K).encode(np.zeros((256, 1024), np.uint8), 8)  # 512*512 pixels too
    bad = tmp_path / "j2k-shape.dcm"
    _reencapsulate(good, bad, lambda k, f: other if k == 0 else f)
    _assert_refused(tmp_path, bad, "frame 1", "256x1024", "expected 512x512")


# ---------------------------------------------------------------------------------------------
# per-frame geometry and counts
# ---------------------------------------------------------------------------------------------
def _edit(tmp_path, name, change, src=DCMQI / "liver.dcm"):
    ds = pydicom.dcmread(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the very values we write
        change(ds)
        p = tmp_path / f"{name}.dcm"
        ds.save_as(p)
    return p


def _ipp(v):
    def change(ds):
        ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0]\
            .ImagePositionPatient = v
    return change


def _pixel_measures(keyword, v):
    def change(ds):
        setattr(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0], keyword, v)
    return change


def _iop(v):
    def change(ds):
        ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]\
            .ImageOrientationPatient = v
    return change


def _segment(v):
    def change(ds):
        ds.PerFrameFunctionalGroupsSequence[0].SegmentIdentificationSequence[0]\
            .ReferencedSegmentNumber = v
    return change


def _frames(v):
    def change(ds):
        ds.NumberOfFrames = v
    return change


GEOMETRY = {
    "ipp-nan": (_ipp(["nan", "0", "0"]), ["frame 2", "ImagePositionPatient", "finite"]),
    "ipp-inf": (_ipp(["-inf", "1", "2"]), ["frame 2", "ImagePositionPatient", "finite"]),
    "ipp-two-values": (_ipp(["1", "2"]), ["frame 2", "ImagePositionPatient"]),
    "spacing-zero": (_pixel_measures("PixelSpacing", ["0", "0.8"]), ["PixelSpacing", "positive"]),
    "spacing-nan": (_pixel_measures("PixelSpacing", ["nan", "1"]), ["PixelSpacing"]),
    "spacing-one-value": (_pixel_measures("PixelSpacing", ["1"]), ["PixelSpacing"]),
    "thickness-inf": (_pixel_measures("SliceThickness", "inf"), ["SliceThickness", "finite"]),
    "orientation-zero": (_iop(["0"] * 6), ["ImageOrientationPatient", "orthogonal unit"]),
    "orientation-nan": (_iop(["nan", "0", "0", "0", "1", "0"]), ["ImageOrientationPatient"]),
    "segment-0": (_segment(0), ["frame 1 references segment 0"]),
    "frames-0": (_frames(0), ["NumberOfFrames 0"]),
    "frames-4": (_frames(4), ["NumberOfFrames is 4", "3 per-frame"]),
}


@pytest.mark.parametrize("name", list(GEOMETRY))
def test_hostile_frame_geometry_is_one_line(tmp_path, name):
    change, needles = GEOMETRY[name]
    bad = _edit(tmp_path, name, change)
    out = tmp_path / "out"
    out.mkdir()
    for args in (["convert", bad, "-o", out / "x.nii.gz"],
                 ["convert", bad, "-o", out / "x.nii.gz", "-r", CT3], ["info", bad]):
        res = run(*args)
        assert "internal error" not in res.stderr
        assert res.returncode == 1, (args, res.stderr)
        assert_clean_failure(res, out, str(bad), *needles)


def test_slice_thickness_that_is_not_a_number(tmp_path):
    good = _edit(tmp_path, "thick", _pixel_measures("SliceThickness", "7.7777"))
    raw = good.read_bytes()
    assert raw.count(b"7.7777") == 1
    bad = tmp_path / "thick-junk.dcm"
    bad.write_bytes(raw.replace(b"7.7777", b"abc\x01de"))
    out = tmp_path / "out"
    out.mkdir()
    res = run("convert", bad, "-o", out / "x.nii.gz")
    assert "internal error" not in res.stderr
    assert_clean_failure(res, out, str(bad))
    assert "SliceThickness" in res.stderr or "(0018,0050)" in res.stderr


# ---------------------------------------------------------------------------------------------
# seeded sweep: truncations and byte changes of the pixel data of real and own SEGs
# ---------------------------------------------------------------------------------------------
def _independent_frames(path) -> np.ndarray:
    """All frames as an independent reader decodes them: pydicom (+ pylibjpeg / pyjpegls), and
    for the layouts pydicom 3 does not decode (Deflated Image Frame Compression, bit-packed
    1-bit RLE) zlib / pylibjpeg-rle on pydicom's frame split."""
    ds = pydicom.dcmread(path)
    nf, rows, cols = int(ds.get("NumberOfFrames", 1) or 1), ds.Rows, ds.Columns
    ts = ds.file_meta.TransferSyntaxUID
    n = rows * cols
    if ts == DFL or (ts == RLE and ds.BitsAllocated == 1):
        from rle.utils import decode_segment

        out = []
        for fr in generate_frames(ds.PixelData, number_of_frames=nf):
            if ts == DFL:
                d = zlib.decompressobj(-15)
                raw = d.decompress(fr)
                assert d.eof and d.unused_data in (b"", b"\x00")
            else:
                head = struct.unpack("<16L", fr[:64])
                assert head[:2] == (1, 64)
                raw = decode_segment(fr[64:])
            dtype = np.uint8 if ds.BitsAllocated in (1, 8) else np.dtype("<u2")
            a = np.frombuffer(raw, dtype)
            if ds.BitsAllocated == 1 and a.size == (n + 7) // 8:
                a = np.unpackbits(a, bitorder="little", count=n)
            assert a.size == n and (ds.BitsAllocated != 1 or a.max(initial=0) <= 1)
            out.append(a.reshape(rows, cols))
        return np.stack(out)
    arr = ds.pixel_array
    return arr[None] if nf == 1 else arr


def _own_frames(path) -> np.ndarray:
    f = SegFile(path)
    f.check_counts()
    src = f.frame_source()
    return np.stack([np.asarray(src.frame(k)) for k in range(f.number_of_frames)])


@pytest.fixture(scope="module")
def sweep_files(tmp_path_factory, ct3):
    d = tmp_path_factory.mktemp("sweep")
    files = [DCMQI / "liver.dcm", PYD / "liver_rle.dcm", PYD / "liver_j2k.dcm",
             PYD / "liver_deflate.dcm", PYD / "liver_nonbyte_aligned_rle.dcm"]
    liver = sb.read(DCMQI / "liver.dcm", reference=ct3)
    for comp in COMPRESSIONS:
        for kind in ("binary", "labelmap", "fractional"):
            if comp == "jpegls" and kind == "binary":
                continue
            p = d / f"{kind}-{comp}.dcm"
            sb.write(liver, p, type=kind, compression=comp, profile="archive")
            files.append(p)
    return files


def test_sweep_truncations_and_byte_changes(tmp_path, sweep_files):
    runs = int(os.environ.get("SEGBRIDGE_FUZZ_N", "4"))
    rng = random.Random(11)
    counts = {"clean": 0, "equal": 0}
    failures = []
    for src in sweep_files:
        data = src.read_bytes()
        start = data.rfind(b"\xe0\x7f\x10\x00")
        for i in range(runs):
            pos = rng.randrange(start, len(data))
            if i % 2:
                blob = data[:pos]
            else:
                b = bytearray(data)
                b[pos] ^= rng.randrange(1, 256)
                blob = bytes(b)
            bad = tmp_path / f"m-{src.name}"
            bad.write_bytes(blob)
            what = f"{src.name} {'cut at' if i % 2 else 'byte changed at'} {pos}"
            try:
                ours = _own_frames(bad)
            except SegbridgeError as exc:
                msg = str(exc)
                if "\n" in msg or str(bad) not in msg:
                    failures.append(f"{what}: message {msg!r}")
                counts["clean"] += 1
                continue
            except Exception as exc:  # noqa: BLE001 - the point of the test
                failures.append(f"{what}: {type(exc).__name__}: {exc}")
                continue
            try:
                theirs = _independent_frames(bad)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{what}: we decoded it, the independent reader refuses it "
                                f"({type(exc).__name__})")
                continue
            if ours.shape != theirs.shape or not np.array_equal(ours.astype(np.int64),
                                                                 theirs.astype(np.int64)):
                failures.append(f"{what}: frames differ from the independent reader")
            else:
                counts["equal"] += 1
    assert not failures, failures[:10]
    assert counts["clean"] and counts["equal"]


def test_damaged_transfer_syntax_uid_names_the_file(tmp_path):
    """Found by the fuzzer: one flipped byte in the file-meta TransferSyntaxUID of an
    encapsulated SEG gave 'transfer syntax ... is not supported' without the file."""
    raw = bytearray((PYD / "liver_rle.dcm").read_bytes())
    uid = b"1.2.840.10008.1.2.5"
    at = raw.index(uid)
    raw[at + 10] ^= 0x9B
    bad = tmp_path / "ts.dcm"
    bad.write_bytes(bytes(raw))
    out = tmp_path / "out"
    out.mkdir()
    res = run("convert", bad, "-o", out / "x.nii.gz", "-r", CT3)
    assert_clean_failure(res, out, str(bad), "transfer syntax '1.2.840.10")
    assert all(c.isprintable() for c in res.stderr.strip())


def test_short_native_pixel_data_names_the_file(tmp_path):
    """Found by the fuzzer: 'pixel data holds N bytes but ... need M' without the file."""
    ds = pydicom.dcmread(DCMQI / "liver.dcm")
    ds.PixelData = ds.PixelData[:100]
    bad = tmp_path / "short.dcm"
    ds.save_as(bad)
    out = tmp_path / "out"
    out.mkdir()
    res = run("convert", bad, "-o", out / "x.nii.gz", "-r", CT3)
    assert_clean_failure(res, out, str(bad), "pixel data holds 100 bytes")
