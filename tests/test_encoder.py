"""The pydicom-free element encoder: its tag table, text fitting and what pydicom reads back."""

from io import BytesIO

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword

from segbridge.dicom.encoder import WRITER_TAGS, DataSet, encode_text, file_meta, fit


def test_writer_tags_agree_with_pydicoms_dictionary():
    for keyword, (tag, vr) in WRITER_TAGS.items():
        assert tag_for_keyword(keyword) == tag, keyword
        assert vr in dictionary_VR(tag).split(" or "), keyword


@pytest.mark.parametrize("value, vr, want", [
    ("Liver\ndata file: /etc/passwd\n\n", "LO", "Liver data file: /etc/passwd  "),
    ("a\x00b\\c", "LO", "a b/c"),
    ("x" * 70, "LO", "x" * 64),
    ("ab\\cd\r\n", "ST", "ab\\cd  "),
    ("my label-1!", "CS", "MY LABEL_1_"),
    ("Doe^Jane\n", "PN", "Doe^Jane "),
    ("Tissue", "LO", "Tissue"),
])
def test_fit(value, vr, want):
    assert fit(value, vr) == want


def test_data_set_reads_back_in_pydicom():
    ds = DataSet("ISO_IR 100").update(
        SpecificCharacterSet="ISO_IR 100", SegmentLabel="Lébér", SeriesNumber=7,
        Rows=12, ImagePositionPatient=["-1.5", "2", "3.25"],
        DimensionIndexPointer=[0x0062000B],
        SegmentSequence=[DataSet().update(SegmentNumber=1, SegmentLabel="a")])
    meta = file_meta("1.2.3", "1.2.3.4", "1.2.840.10008.1.2.1", "TEST")
    read = pydicom.dcmread(BytesIO(meta + ds.encode()))
    assert read.file_meta.FileMetaInformationGroupLength == len(meta) - 132 - 12
    assert read.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (read.SegmentLabel, read.SeriesNumber, read.Rows) == ("Lébér", 7, 12)
    assert [str(v) for v in read.ImagePositionPatient] == ["-1.5", "2", "3.25"]
    assert read.DimensionIndexPointer == 0x0062000B
    assert read.SegmentSequence[0].SegmentLabel == "a"


def test_text_the_character_set_cannot_hold_is_flagged():
    # the default repertoire is ASCII (PS3.5 6.1.2.2): not pydicom's lenient latin-1
    assert encode_text("Lébér", None) == (b"L?b?r", False)
    assert encode_text("Lébér", "ISO_IR 6") == (b"L?b?r", False)
    assert encode_text("Lébér", "ISO_IR 100") == (b"L\xe9b\xe9r", True)
    assert encode_text("Ж", None) == (b"?", False)
    assert encode_text("Ж", "ISO_IR 192") == ("Ж".encode(), True)
