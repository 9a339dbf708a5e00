"""The start of every object segbridge derives from source images (SEG, RTSTRUCT).

Patient, study and clinical-trial attributes are copied from the source; Type 2 attributes a
derived object must carry are present even when the source lacks them.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from ..errors import InvalidInputError
from ..model import SourceRef
from . import rawdicom as raw

TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                       "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


def source_header(src: SourceRef) -> Dataset:
    """The source's copied attributes as a pydicom Dataset (empty when it has none)."""
    header = src.header
    if isinstance(header, raw.EncodedHeader):
        header = header.to_pydicom()
    return header if isinstance(header, Dataset) else Dataset()


def base_dataset(src: SourceRef) -> Dataset:
    """A new dataset with the source's patient / study modules and its Study Instance UID."""
    header = source_header(src)
    ds = Dataset()
    for elem in header:
        ds[elem.tag] = elem
    ds.StudyInstanceUID = src.study_instance_uid or header.get("StudyInstanceUID", "")
    if not ds.StudyInstanceUID:
        raise InvalidInputError("the source has no Study Instance UID; pass --assign-uids")
    for kw in TYPE2_PATIENT_STUDY:
        if kw not in ds:
            setattr(ds, kw, "")
    return ds
