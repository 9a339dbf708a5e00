"""DICOM files are memory-mapped, not read whole (issue 14: bounded memory at whole-body
scale); dropping the mapped pages mid-read changes nothing that is decoded, and files that
cannot be mapped are still read or refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DCMQI

import segbridge as sb
from segbridge.dicom import seg_reader
from segbridge.dicom.parse import parse_file
from segbridge.errors import InvalidInputError


def test_a_regular_file_is_mapped_and_an_empty_one_refused_in_one_line(tmp_path):
    parsed = parse_file(DCMQI / "liver.dcm")
    assert parsed.mapping is not None and len(parsed.mapping) == (DCMQI / "liver.dcm").stat(
    ).st_size
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(InvalidInputError) as e:
        sb.read(empty)
    assert str(empty) in str(e.value) and "\n" not in str(e.value)


def test_dropping_pages_after_every_frame_reads_the_same_voxels(ct3, monkeypatch):
    expected = sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)
    calls = []
    real = seg_reader._pager

    def every_frame(f):
        tick = real(f)

        def drop() -> None:
            tick()
            calls.append(1)
            f.parsed.release_pages()
        return drop
    monkeypatch.setattr(seg_reader, "_pager", every_frame)
    got = sb.read(DCMQI / "partial_overlaps.dcm", reference=ct3)
    assert len(calls) == len(parse_file(DCMQI / "partial_overlaps.dcm").top[0x52009230])
    for s in expected.segments:
        np.testing.assert_array_equal(got.mask(s.number), expected.mask(s.number))


def test_a_file_that_cannot_be_mapped_is_read(tmp_path, monkeypatch):
    from segbridge.dicom import parse

    def refuse(*a, **k):
        raise OSError("no mapping here")
    monkeypatch.setattr(parse.mmap, "mmap", refuse)
    parsed = parse_file(DCMQI / "liver.dcm")
    assert parsed.mapping is None
    seg = sb.read(DCMQI / "liver.dcm")
    assert seg.mask(1).sum() > 0
