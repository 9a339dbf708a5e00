"""The raw element walker against pydicom: every element value of every DICOM file in
../shared/data, of pydicom's character-set test files and of segbridge's own outputs decodes to
what pydicom gives (recursively into sequences, every VR), and hostile bytes end in one line."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest
from conftest import CT3, DATA, DCMQI
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.valuerep import DSfloat, PersonName

import segbridge as sb
from segbridge.dicom import rawdicom as raw
from segbridge.dicom.parse import parse_file
from segbridge.errors import InvalidInputError


def _is_dicom(path: Path) -> bool:
    """A DICOM file by content: the Part 10 preamble, or a dataset pydicom reads (no meta)."""
    with open(path, "rb") as fp:
        if fp.read(132)[128:132] == b"DICM":
            return True
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:
        return False
    return "SOPClassUID" in ds


SHARED_DICOM = sorted(p for p in DATA.rglob("*") if p.is_file() and _is_dicom(p))
CHARSET_FILES = sorted(Path(p) for p in pydicom.data.get_charset_files("*.dcm"))


def test_the_data_set_has_every_encoding():
    """The comparison below covers implicit, explicit, big-endian and deflated files."""
    syntaxes = {parse_file(p).transfer_syntax for p in SHARED_DICOM}
    assert {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"} <= syntaxes
    assert len(SHARED_DICOM) > 100


def _norm(v):
    """pydicom's value in plain Python types (DSfloat -> float, IS -> int, tags -> int)."""
    if isinstance(v, (MultiValue, list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, PersonName):
        return str(v)
    if isinstance(v, BaseTag):
        return int(v)
    if isinstance(v, DSfloat):
        return float(v)
    if isinstance(v, pydicom.valuerep.IS):
        return int(v)
    if isinstance(v, str):
        return str(v)
    return v


def _same(ours, theirs) -> bool:
    if isinstance(ours, float) and isinstance(theirs, float):
        return ours == theirs or (np.isnan(ours) and np.isnan(theirs))
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(_same(a, b) for a, b in zip(ours, theirs, strict=True))
    return ours == theirs and type(ours) is type(theirs)


def _encapsulated(frags) -> bytes:
    return b"".join(raw.item(bytes(f)) for f in frags)  # pydicom drops the delimiter


def compare(rds: raw.RawDataset, pds: pydicom.Dataset, parsed, where: str) -> int:
    """Assert every walked element equals pydicom's; returns how many were compared."""
    n = 0
    for tag, value in rds.elements.items():
        at = f"{where}{raw.tag_str(tag)}"
        assert tag in pds, f"{at}: walked but not in pydicom's dataset"
        elem = pds[tag]
        if elem.VR == "SQ" and not isinstance(value, list):
            # implicit VR: a sequence outside segbridge's table is kept as bytes; walk them
            assert parsed.implicit and value[0] == b"UN", at
            value, _ = raw.Walker(value[1], parsed.little, True).sequence(0, len(value[1]))
        if isinstance(value, list):
            assert elem.VR in ("SQ", "UN"), at
            assert len(value) == len(elem.value), at
            for i, (item, pitem) in enumerate(zip(value, elem.value, strict=True)):
                n += compare(rds.item(item), pitem, parsed, f"{at}[{i}]")
            continue
        vr, mv = value
        vr = vr.decode()
        if vr == "encapsulated":
            assert _encapsulated(mv) == elem.value, at
            n += 1
            continue
        if parsed.implicit or vr == "UN":
            vr = elem.VR if " or " not in elem.VR else "OB"  # pydicom's resolved VR
        else:
            assert vr == elem.VR, f"{at}: VR {vr} vs pydicom {elem.VR}"
        ours = raw.decode_value(vr, mv, parsed.little, rds.encoding)
        theirs = _norm(elem.value)
        if theirs == "" and vr in ("DS", "IS"):
            theirs = None
        if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN") and theirs == b"":
            theirs = None
        assert _same(ours, theirs), f"{at} {vr}: walker {ours!r:.200} != pydicom {theirs!r:.200}"
        n += 1
    assert all(tag in rds.elements for tag in pds.keys()), \
        f"{where}: pydicom has elements the walker missed"
    return n


def compare_file(path: Path) -> int:
    parsed = parse_file(path)
    pds = pydicom.dcmread(path, force=True)
    n = compare(parsed.ds, pds, parsed, "")
    meta = parsed.meta
    for tag, (vr, mv) in meta.elements.items():
        theirs = _norm(pds.file_meta[tag].value)
        assert _same(raw.decode_value(vr.decode(), mv), theirs), f"meta {raw.tag_str(tag)}"
    return n


@pytest.mark.parametrize("path", SHARED_DICOM, ids=[str(p.relative_to(DATA)) for p in
                                                    SHARED_DICOM])
def test_every_shared_dicom_file_decodes_as_pydicom_decodes_it(path):
    assert compare_file(path) > 0


@pytest.mark.parametrize("path", CHARSET_FILES, ids=[p.name for p in CHARSET_FILES])
def test_character_sets_decode_as_pydicom_decodes_them(path):
    assert compare_file(path) > 0


def test_a_japanese_name_is_decoded_not_replaced():
    parsed = parse_file(next(p for p in CHARSET_FILES if p.name == "chrH31.dcm"))
    name = parsed.ds.get("PatientName")
    assert name == str(pydicom.dcmread(parsed.path).PatientName)
    assert "\ufffd" not in name and any(ord(c) > 0x3000 for c in name)


def test_at_ul_sl_values_are_numbers_not_none():
    """Class 9: UL/SL/AT decoded with native struct sizes read as None on 64-bit Linux."""
    parsed = parse_file(DCMQI / "liver.dcm")
    dims = parsed.ds.get("DimensionIndexSequence")
    assert [d.get("DimensionIndexPointer") for d in dims] == [0x0062000B, 0x00200032]
    assert [d.get("FunctionalGroupPointer") for d in dims] == [0x0062000A, 0x00209113]
    assert raw.decode_value("UL", struct.pack("<2L", 7, 2**32 - 1)) == [7, 2**32 - 1]
    assert raw.decode_value("SL", struct.pack(">l", -5), little=False) == -5
    assert raw.decode_value("AT", struct.pack(">2H", 0x0062, 0x000B), little=False) == 0x0062000B
    assert raw.decode_value("SV", struct.pack("<q", -(2**40))) == -(2**40)
    assert raw.decode_value("UV", struct.pack("<Q", 2**63)) == 2**63


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """segbridge's own SEGs in every compression, and an RTSTRUCT, on the CT3 reference."""
    out = tmp_path_factory.mktemp("outputs")
    ref = sb.read_series(CT3)
    seg = sb.read(DCMQI / "partial_overlaps.dcm", reference=ref)
    files = []
    for comp in ("none", "rle", "jpegls", "jpeg2000", "deflate", "deflate-frame"):
        for kind in ("binary", "labelmap"):
            if kind == "binary" and comp == "jpegls":
                continue
            m = seg if kind == "binary" else seg.subset([1, 4, 5])
            files += sb.write(m, out / f"{kind}-{comp}.dcm", type=kind, compression=comp,
                              profile="archive", reference=ref)
    frac = sb.Segmentation(seg.grid, seg.segments, source=seg.source,
                           fractional={s.number: seg.fraction(s.number) for s in seg.segments})
    files += sb.write(frac, out / "fractional.dcm", type="fractional", profile="archive",
                      compression="none", reference=ref)
    files += sb.write(seg.subset([1, 4]), out / "rt.dcm", to="rtstruct", reference=ref)
    return files


def test_segbridge_outputs_decode_as_pydicom_decodes_them(outputs):
    assert len(outputs) >= 12
    syntaxes = set()
    for path in outputs:
        assert compare_file(path) > 0, path
        syntaxes.add(parse_file(path).transfer_syntax)
    assert {"1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.8.1"} <= syntaxes


# ---------------------------------------------------------------------------------------------
# hostile bytes: one line naming the file, never a library exception
# ---------------------------------------------------------------------------------------------
LIVER = DCMQI / "liver.dcm"


def _refused(path: Path, *words: str) -> str:
    with pytest.raises(InvalidInputError) as exc:
        parse_file(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def _offset_of(data: bytes, tag: int, vr: bytes) -> int:
    return data.index(struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr)


@pytest.fixture
def defined(tmp_path) -> bytearray:
    """liver.dcm with every sequence and item of defined length (pydicom writes them so)."""
    ds = pydicom.dcmread(LIVER)

    def define(d):
        for elem in d:
            if elem.VR == "SQ":
                elem.is_undefined_length = False
                for item in elem.value:
                    item.is_undefined_length_sequence_item = False
                    define(item)
    define(ds)
    path = tmp_path / "defined.dcm"
    ds.save_as(path)
    parse_file(path)
    return bytearray(path.read_bytes())


def test_a_corrupted_vr_byte_is_one_line(tmp_path):
    data = bytearray(LIVER.read_bytes())
    i = _offset_of(data, 0x00620005, b"LO")  # SegmentLabel, inside SegmentSequence
    data[i + 4] = 0x01
    bad = tmp_path / "vr.dcm"
    bad.write_bytes(bytes(data))
    _refused(bad, "invalid VR", "(0062,0005)")


def test_a_value_longer_than_its_item_is_one_line(tmp_path, defined):
    i = _offset_of(defined, 0x00620005, b"LO")
    defined[i + 6:i + 8] = struct.pack("<H", 3000)  # past its item, not past the file
    bad = tmp_path / "len.dcm"
    bad.write_bytes(bytes(defined))
    _refused(bad, "runs past the end of its item")


def test_a_value_longer_than_the_file_is_one_line(tmp_path, defined):
    i = _offset_of(defined, 0x00620005, b"LO")
    defined[i + 6:i + 8] = struct.pack("<H", 0xFFF0)
    bad = tmp_path / "len.dcm"
    bad.write_bytes(bytes(defined[:i + 2000]))
    _refused(bad, "(0062,0005) is truncated")


def test_an_item_longer_than_its_sequence_is_one_line(tmp_path, defined):
    i = _offset_of(defined, 0x00620002, b"SQ")  # SegmentSequence
    item = i + 12
    assert struct.unpack_from("<HH", defined, item) == (0xFFFE, 0xE000)
    (length,) = struct.unpack_from("<L", defined, item + 4)
    defined[item + 4:item + 8] = struct.pack("<L", length + 1000)
    bad = tmp_path / "item.dcm"
    bad.write_bytes(bytes(defined))
    _refused(bad, "runs past the end of the sequence")


def test_an_item_delimiter_in_the_top_level_dataset_is_one_line(tmp_path, defined):
    i = _offset_of(defined, 0x00080060, b"CS")  # Modality
    defined[i:i + 8] = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    bad = tmp_path / "delim.dcm"
    bad.write_bytes(bytes(defined))
    _refused(bad, "unexpected item tag (FFFE,E00D)")


@pytest.mark.parametrize("keep", [200, 1000, 5000, 40000, -3, -9])
def test_truncated_files_are_one_line(tmp_path, keep):
    data = LIVER.read_bytes()
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(data[:keep] if keep > 0 else data[:keep])
    msg = _refused(bad)
    assert "truncated" in msg or "runs past" in msg or "not" in msg, msg


def test_lenient_parse_notes_truncation_instead_of_failing(tmp_path):
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(LIVER.read_bytes()[:-1000])
    parsed = parse_file(bad, lenient=True)
    assert parsed.walker.truncated and parsed.walker.truncated[0][0] == raw.PIXEL_DATA


def test_an_undefined_length_sequence_without_delimiter_is_truncated(tmp_path):
    ds = pydicom.dcmread(LIVER)
    ds.SegmentSequence.is_undefined_length = True
    full = tmp_path / "undef.dcm"
    ds.save_as(full)
    data = full.read_bytes()
    # drop the pixel data and everything else after the sequence delimiter
    end = data.index(struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))
    bad = tmp_path / "undef-cut.dcm"
    bad.write_bytes(data[:end])
    _refused(bad, "truncated")
    parse_file(full)  # the complete file is fine


def test_bad_numbers_are_one_line(tmp_path, defined):
    i = _offset_of(defined, 0x00180050, b"DS")  # SliceThickness
    n = struct.unpack_from("<H", defined, i + 6)[0]
    defined[i + 8:i + 8 + n] = b"abc".ljust(n)
    j = _offset_of(defined, 0x00280010, b"US")  # Rows: 3 bytes for a US value
    defined[j + 6:j + 8] = struct.pack("<H", 3)
    del defined[j + 8]
    defined[j + 8:j + 8] = b"\x00"  # keep the file length: the next element starts 1 byte early
    bad = tmp_path / "ds.dcm"
    bad.write_bytes(bytes(defined))
    with pytest.raises(InvalidInputError):
        parse_file(bad)  # the odd length shifts the walk into garbage
    defined[j + 6:j + 8] = struct.pack("<H", 2)
    bad.write_bytes(bytes(defined))
    parsed = parse_file(bad)
    pm = parsed.ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    with pytest.raises(InvalidInputError, match=r"ds\.dcm: element \(0018,0050\): 'abc' is not"):
        pm.get("SliceThickness")
    with pytest.raises(InvalidInputError, match=r"not a whole number of 2-byte values"):
        raw.decode_value("US", b"\x01\x02\x03", name="x.dcm")
    with pytest.raises(InvalidInputError, match=r"x\.dcm: .*'1\.5' is not a valid integer"):
        raw.decode_value("IS", b"1.5 ", name="x.dcm")
    walker = parsed.walker
    with pytest.raises(InvalidInputError, match=r"ds\.dcm: 'x\\\\1' is not a list of decimal"):
        walker.floats((b"DS", memoryview(b"x\\1")))


def _deflated(tmp_path: Path) -> tuple[bytes, int]:
    """liver.dcm saved by pydicom in Deflated Explicit VR Little Endian, and where its
    deflated dataset starts (after the file meta group)."""
    ds = pydicom.dcmread(LIVER)
    path = tmp_path / "deflated.dcm"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    ds.save_as(path)
    assert parse_file(path).transfer_syntax == "1.2.840.10008.1.2.1.99"
    assert compare_file(path) > 0  # and it decodes as pydicom decodes it
    data = path.read_bytes()
    group_length = struct.unpack_from("<L", data, 132 + 8)[0]
    return data, 132 + 12 + group_length


def test_deflate_stream_is_checked_to_its_end(tmp_path):
    data, start = _deflated(tmp_path)
    assert zlib.decompressobj(-zlib.MAX_WBITS).decompress(data[start:])
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: start + (len(data) - start) // 2])
    _refused(cut, "deflated dataset is truncated")
    flipped = bytearray(data)
    flipped[start + 40] ^= 0xFF
    bad = tmp_path / "flip.dcm"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(InvalidInputError) as exc:
        parse_file(bad)
    assert str(exc.value).startswith(f"{bad}: ") and "\n" not in str(exc.value)
    tail = tmp_path / "tail.dcm"
    tail.write_bytes(data + b"GARBAGE!")
    _refused(tail, "follow the end of the deflated dataset")
    pad = tmp_path / "pad.dcm"
    pad.write_bytes(data + b"\x00")  # one padding byte to even length is accepted
    parse_file(pad)


def test_sop_class_of_survives_a_broken_meta(tmp_path):
    from segbridge.dicom.parse import sop_class_of

    data = bytearray(LIVER.read_bytes())
    data[132 + 6:132 + 8] = struct.pack("<H", 65000)  # meta group length runs off the head
    bad = tmp_path / "meta.dcm"
    bad.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError):
        sop_class_of(bad)


def test_identical_small_sequences_are_walked_once_and_shared():
    """Per-frame functional groups repeat the same small sequences thousands of times: the
    walker shares the items of identical bytes (read-only) and walks differing ones apart."""
    ref = raw.sequence(0x00082112, [raw.element(0x00081155, b"UI", raw.text("1.2.3.4"))])
    other = raw.sequence(0x00082112, [raw.element(0x00081155, b"UI", raw.text("1.2.3.5"))])
    frames = [ref + raw.element(0x00209157, b"UL", raw.ul(i)) for i in (1, 2)]
    frames.append(other + raw.element(0x00209157, b"UL", raw.ul(3)))
    data = raw.sequence(raw.PER_FRAME_FG, frames)
    walker = raw.Walker(data)
    top, _ = walker.dataset(0, len(data))
    items = top[raw.PER_FRAME_FG]
    first, second, third = (it[0x00082112] for it in items)
    assert first is second and first is not third
    assert walker.text(first[0][0x00081155]) == "1.2.3.4"
    assert walker.text(third[0][0x00081155]) == "1.2.3.5"
    assert [walker.ints(it[0x00209157])[0] for it in items] == [1, 2, 3]


def test_a_truncated_small_sequence_is_not_shared():
    """A lenient walk keeps what a cut sequence holds, but never hands that clipped walk to
    another element with the same leading bytes."""
    seq = raw.sequence(0x00082112, [raw.element(0x00081155, b"UI", raw.text("1.2.3.4"))])
    cut = seq[:-4]  # the value of the sequence element runs past the data
    walker = raw.Walker(cut, lenient=True)
    walker.dataset(0, len(cut))
    assert walker.truncated and not walker._sequences
