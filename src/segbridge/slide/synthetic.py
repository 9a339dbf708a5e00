"""Synthetic VL Whole Slide Microscopy images (pydicom) for tests, demos and benchmarks.

A TILED_FULL image (PS3.3 C.8.12.4, C.7.6.17.3) of a given total pixel matrix and tile size:
tiny RGB or MONOCHROME2 pixels, Specimen / Container / Optical Path modules filled as a
scanner fills them, one level per call (``--levels`` share series, frame of reference and
Pyramid UID).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


def sm_image(path: str | os.PathLike, rows: int, columns: int, tile: int = 256, *,
             spacing_mm: float = 0.0005, color: bool = True, study_uid: str | None = None,
             series_uid: str | None = None, frame_of_reference_uid: str | None = None,
             pyramid_uid: str | None = None, instance_number: int = 1,
             container_id: str = "SLIDE-1", seed: int = 0, pixels: bool = True) -> Path:
    """Write one TILED_FULL VL WSI level of ``rows`` x ``columns`` pixels; returns its path.

    ``pixels=False`` leaves PixelData out: a header for benchmarks of slides too large to
    fill (segbridge and highdicom read only the header of the source image when writing).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    def code(value: str, scheme: str, meaning: str) -> Dataset:
        c = Dataset()
        c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
        return c

    ds = Dataset()
    ds.SOPClassUID = SM_SOP_CLASS
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    ds.PyramidUID = pyramid_uid or generate_uid()
    ds.Modality = "SM"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Slide^Test", "P1", "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20260101", "120000", "1", "A1"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber, ds.InstanceNumber = 1, instance_number
    ds.Manufacturer, ds.ManufacturerModelName = "segbridge", "synthetic"
    ds.DeviceSerialNumber, ds.SoftwareVersions = "1", "1"
    ds.ContentDate, ds.ContentTime = "20260101", "120000"
    ds.AcquisitionDateTime = "20260101120000"
    ds.PositionReferenceIndicator = "SLIDE_CORNER"
    ds.VolumetricProperties = "VOLUME"
    ds.BurnedInAnnotation, ds.SpecimenLabelInImage = "NO", "NO"
    ds.FocusMethod, ds.ExtendedDepthOfField = "AUTO", "NO"
    ds.LossyImageCompression = "00"
    ds.ContainerIdentifier = container_id
    ds.IssuerOfTheContainerIdentifierSequence = Sequence()
    ds.ContainerTypeCodeSequence = Sequence([code("433466003", "SCT", "Microscope slide")])
    spec = Dataset()
    spec.SpecimenIdentifier = container_id + "-S"
    spec.SpecimenUID = generate_uid()
    spec.IssuerOfTheSpecimenIdentifierSequence = Sequence()
    spec.SpecimenPreparationSequence = Sequence()
    ds.SpecimenDescriptionSequence = Sequence([spec])
    ds.AcquisitionContextSequence = Sequence()
    ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns = rows, columns
    ds.TotalPixelMatrixFocalPlanes = 1
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = "20.0"
    origin.YOffsetInSlideCoordinateSystem = "40.0"
    ds.TotalPixelMatrixOriginSequence = Sequence([origin])
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    ds.ImagedVolumeWidth = columns * spacing_mm
    ds.ImagedVolumeHeight = rows * spacing_mm
    ds.ImagedVolumeDepth = 0.01
    op = Dataset()
    op.OpticalPathIdentifier = "1"
    op.IlluminationTypeCodeSequence = Sequence([code("111744", "DCM", "Brightfield illumination")])
    op.IlluminationColorCodeSequence = Sequence([code("414298005", "SCT", "Full Spectrum")])
    ds.OpticalPathSequence = Sequence([op])
    ds.NumberOfOpticalPaths = 1
    pm = Dataset()
    pm.PixelSpacing = [spacing_mm, spacing_mm]
    pm.SliceThickness = 0.01
    ft = Dataset()
    ft.FrameType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([pm])
    shared.WholeSlideMicroscopyImageFrameTypeSequence = Sequence([ft])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    org = generate_uid()
    ds.DimensionOrganizationSequence = Sequence([Dataset()])
    ds.DimensionOrganizationSequence[0].DimensionOrganizationUID = org
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.Rows = ds.Columns = tile
    n = -(-rows // tile) * -(-columns // tile)
    ds.NumberOfFrames = n
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = "RGB" if color else "MONOCHROME2"
    if color:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if pixels:
        rng = np.random.default_rng(seed)
        shape = (n, tile, tile, 3) if color else (n, tile, tile)
        ds.PixelData = rng.integers(180, 255, shape, dtype=np.uint8).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SM_SOP_CLASS
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = Path(path)
    ds.save_as(out, enforce_file_format=True)
    return out


def sm_pyramid(folder: str | os.PathLike, rows: int, columns: int, tile: int,
               factors: tuple[int, ...] = (1, 2), **kw) -> list[Path]:
    """Levels ``rows // f`` x ``columns // f`` of one slide (one series, one pyramid)."""
    from pydicom.uid import generate_uid

    uids = dict(study_uid=generate_uid(), series_uid=generate_uid(),
                frame_of_reference_uid=generate_uid(), pyramid_uid=generate_uid())
    spacing = kw.pop("spacing_mm", 0.0005)
    return [sm_image(Path(folder) / f"level{i}.dcm", rows // f, columns // f, tile,
                     spacing_mm=spacing * f, instance_number=i + 1, **uids, **kw)
            for i, f in enumerate(factors)]
