"""Read a VL Whole Slide Microscopy image's header into a :class:`SlideGrid` (pydicom).

Only the header is read (``stop_before_pixels``): the total pixel matrix size and tile size
(PS3.3 C.8.12.4), PixelSpacing of the level (Shared Functional Groups, Pixel Measures),
ImageOrientationSlide, TotalPixelMatrixOriginSequence, the Frame of Reference, optical paths,
and the attributes a derived SEG copies (Patient, Study, Specimen modules).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidInputError
from .model import SlideGrid, SlideSource

#: attributes a SEG on a slide copies from its source: Patient, General Study, Clinical
#: Trial, Frame of Reference and Specimen modules (PS3.3 C.7.6.22) and the slide geometry
COPIED = (
    "SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID",
    "IssuerOfPatientIDQualifiersSequence", "PatientBirthDate", "PatientSex",
    "OtherPatientIDsSequence", "PatientAge", "PatientIdentityRemoved",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence", "StudyInstanceUID",
    "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
    "IssuerOfAccessionNumberSequence", "StudyDescription", "ClinicalTrialSponsorName",
    "ClinicalTrialProtocolID", "ClinicalTrialProtocolName", "ClinicalTrialSiteID",
    "ClinicalTrialSiteName", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID",
    "ClinicalTrialTimePointID", "PositionReferenceIndicator", "ContainerIdentifier",
    "IssuerOfTheContainerIdentifierSequence", "AlternateContainerIdentifierSequence",
    "ContainerTypeCodeSequence", "ContainerDescription", "ContainerComponentSequence",
    "SpecimenDescriptionSequence", "TotalPixelMatrixOriginSequence", "ImageOrientationSlide",
)


def read_sm(path: str | os.PathLike) -> SlideGrid:
    """The slide grid of one VL WSI level (any SOP instance with a total pixel matrix)."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.errors import InvalidDicomError

    p = Path(path)
    try:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise InvalidInputError(f"{p}: not a readable DICOM file ({exc})") from None
    if str(ds.get("SOPClassUID", "")).startswith("1.2.840.10008.5.1.4.1.1.66."):
        raise InvalidInputError(f"{p}: is a segmentation, not the slide image it was drawn on "
                                "(give the VL Whole Slide Microscopy image)")
    if "TotalPixelMatrixRows" not in ds or "TotalPixelMatrixColumns" not in ds:
        raise InvalidInputError(f"{p}: not a tiled slide image (no TotalPixelMatrixRows); "
                                "TIFF / .npy label images go on slides: a mask of a CT, MR or "
                                "2-D image is read from NIfTI / NRRD (or segbridge.from_array)")
    try:
        return grid_of(ds, Dataset)
    except (AttributeError, IndexError, KeyError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"{p}: incomplete slide image header ({exc})") from None


def grid_of(ds, dataset_cls=None) -> SlideGrid:
    """SlideGrid from a pydicom data set of a slide image (or a SEG on one)."""
    if dataset_cls is None:
        from pydicom.dataset import Dataset as dataset_cls
    spacing = (0.001, 0.001)
    thickness = None
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and "PixelMeasuresSequence" in shared[0]:
        pm = shared[0].PixelMeasuresSequence[0]
        if "PixelSpacing" in pm:
            spacing = (float(pm.PixelSpacing[0]), float(pm.PixelSpacing[1]))
        if pm.get("SliceThickness") is not None:
            thickness = float(pm.SliceThickness)
    origin = (0.0, 0.0)
    if ds.get("TotalPixelMatrixOriginSequence"):
        o = ds.TotalPixelMatrixOriginSequence[0]
        origin = (float(o.XOffsetInSlideCoordinateSystem),
                  float(o.YOffsetInSlideCoordinateSystem))
    orientation = tuple(float(v) for v in ds.get("ImageOrientationSlide",
                                                  [0, -1, 0, -1, 0, 0]))
    paths = tuple(str(op.OpticalPathIdentifier) for op in ds.get("OpticalPathSequence", []))
    header = dataset_cls()
    for kw in COPIED:
        if kw in ds:
            header[kw] = ds[kw]
    return SlideGrid(
        rows=int(ds.TotalPixelMatrixRows), columns=int(ds.TotalPixelMatrixColumns),
        tile_rows=int(ds.Rows), tile_columns=int(ds.Columns), pixel_spacing=spacing,
        orientation=orientation, origin=origin,
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")) or None,
        optical_path_ids=paths or ("1",), container_id=ds.get("ContainerIdentifier"),
        source=SlideSource(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                           str(ds.SOPInstanceUID), str(ds.SOPClassUID)),
        header=header, slice_thickness=thickness)


def read_sm_levels(path: str | os.PathLike) -> list[SlideGrid]:
    """The levels of a slide, largest first: one SM file, or every SM image in a folder
    (one frame of reference; files that are not slide images are skipped)."""
    p = Path(path)
    if not p.is_dir():
        return [read_sm(p)]
    levels = []
    for f in sorted(p.iterdir()):
        if not f.is_file():
            continue
        try:
            levels.append(read_sm(f))
        except InvalidInputError:
            continue
    if not levels:
        raise InvalidInputError(f"{p}: no VL Whole Slide Microscopy image in the folder")
    levels.sort(key=lambda g: (-g.rows, -g.columns))
    fors = {g.frame_of_reference_uid for g in levels}
    if len(fors) > 1:
        raise InvalidInputError(f"{p}: the slide images are in {len(fors)} frames of reference;"
                                " give one slide's levels")
    sizes = [g.shape for g in levels]
    if len(set(sizes)) != len(sizes):
        raise InvalidInputError(f"{p}: two slide images have the same size (several optical "
                                "paths or focal planes are not supported); give one file")
    return levels
