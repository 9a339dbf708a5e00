"""Synthetic CT series and label volumes, for the demo, the tests and the benchmarks.

Writes real DICOM CT slices (pydicom) so every code path sees what it would see with scanner
data; nothing here is used by the converters themselves.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from .geometry import Grid


def write_ct_series(folder: str | Path, hu: np.ndarray, grid: Grid, *,
                    patient: str = "SEGBRIDGE^DEMO", series_description: str = "Synthetic CT",
                    uid_seed: str | None = None) -> list[Path]:
    """Write ``hu`` ([z, y, x] Hounsfield units on ``grid``) as single-frame CT files."""
    stored = np.clip(np.round(hu) + 1024, 0, 4095).astype(np.uint16)

    def ct(ds: Dataset, k: int) -> None:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        ds.PixelData = stored[k].tobytes()

    return _write_series(folder, grid, "CT", CTImageStorage, ct, patient=patient,
                         series_description=series_description, uid_seed=uid_seed)


PET_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def write_pet_series(folder: str | Path, bqml: np.ndarray, grid: Grid, *,
                     weight_kg: float | None = 75.0, dose_bq: float = 3.7e8,
                     half_life_s: float = 6586.2, injection_time: str = "093000",
                     series_time: str = "103000", acquisition_times: list[str] | None = None,
                     decay_correction: str = "START", units: str = "BQML",
                     uid_seed: str | None = None) -> list[Path]:
    """Write ``bqml`` ([z, y, x] activity in Bq/ml) as single-frame PET files with what SUVbw
    needs (weight, dose, half-life, injection and scan times, decay correction).

    Each slice gets its own rescale slope, as scanners do. ``weight_kg=None`` or an empty
    ``decay_correction`` leave those attributes out (for the error paths).
    """
    acquisition_times = acquisition_times or [series_time] * grid.shape[0]
    slopes = np.maximum(bqml.reshape(grid.shape[0], -1).max(axis=1), 1e-3) / 32000.0

    def pet(ds: Dataset, k: int) -> None:
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = 0, f"{slopes[k]:.8g}"
        ds.Units = units
        ds.CorrectedImage = ["ATTN", "DECY", "SCAT"]
        if decay_correction:
            ds.DecayCorrection = decay_correction
        if weight_kg is not None:
            ds.PatientWeight = weight_kg
        ds.SeriesTime = series_time
        ds.AcquisitionDate = ds.SeriesDate
        ds.AcquisitionTime = acquisition_times[k]
        info = Dataset()
        info.RadiopharmaceuticalStartTime = injection_time
        info.RadionuclideTotalDose = dose_bq
        info.RadionuclideHalfLife = half_life_s
        info.Radiopharmaceutical = "Fluorodeoxyglucose"
        ds.RadiopharmaceuticalInformationSequence = [info]
        stored = np.round(bqml[k] / float(ds.RescaleSlope)).astype(np.int16)
        ds.PixelData = stored.tobytes()

    return _write_series(folder, grid, "PT", PET_STORAGE, pet, patient="SEGBRIDGE^PET",
                         series_description="Synthetic PET", uid_seed=uid_seed)


def _write_series(folder: str | Path, grid: Grid, modality: str, sop_class: str, fill, *,
                  patient: str, series_description: str, uid_seed: str | None) -> list[Path]:
    """Single-frame 16-bit images on ``grid``; ``fill(ds, k)`` adds pixels and modality data."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    seed = [uid_seed] if uid_seed else None
    study = generate_uid(entropy_srcs=[*seed, "study"] if seed else None)
    series = generate_uid(entropy_srcs=[*seed, "series", modality] if seed else None)
    for_uid = grid.frame_of_reference_uid or generate_uid(
        entropy_srcs=[*seed, "for"] if seed else None)
    now = _dt.datetime.now()
    iop = [round(float(v), 10) for v in grid.image_orientation]
    paths = []
    positions = grid.slice_positions()
    for k in range(grid.shape[0]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        sop = generate_uid(entropy_srcs=[*seed, "sop", modality, str(k)] if seed else None)
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop
        ds.PatientName = patient
        ds.PatientID = "SB0001"
        ds.PatientBirthDate = "19700101"
        ds.PatientSex = "O"
        ds.StudyInstanceUID = study
        ds.StudyDate = now.strftime("%Y%m%d")
        ds.StudyTime = now.strftime("%H%M%S")
        ds.StudyID = "1"
        ds.AccessionNumber = "SB1"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "segbridge synthetic study"
        ds.Modality = modality
        ds.SeriesInstanceUID = series
        ds.SeriesNumber = 1
        ds.SeriesDescription = series_description
        ds.SeriesDate = ds.StudyDate
        ds.FrameOfReferenceUID = for_uid
        ds.PositionReferenceIndicator = ""
        ds.Manufacturer = "segbridge"
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [round(float(v), 6) for v in positions[k]]
        ds.ImageOrientationPatient = iop
        ds.PixelSpacing = [round(float(grid.spacing[1]), 6), round(float(grid.spacing[2]), 6)]
        ds.SliceThickness = round(float(grid.spacing[0]), 6)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
        ds.BitsAllocated = 16
        fill(ds, k)
        p = out / f"{modality}{k + 1:04d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"
DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"


def _base_2d(sop_class: str, modality: str, sop: str, study: str, series: str,
             rows: int, cols: int, patient: str) -> Dataset:
    """The patient / study / series / image pixel attributes of a 2-D image (no geometry)."""
    now = _dt.datetime.now()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
    ds.PatientName, ds.PatientID = patient, "SB0002"
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyInstanceUID, ds.StudyID, ds.AccessionNumber = study, "2", "SB2"
    ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = modality, series, 1
    ds.Manufacturer = "segbridge"
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["A", "F"] if modality != "US" else ""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = rows, cols
    return ds


def write_us_cine(path: str | Path, frames: int = 64, rows: int = 32, cols: int = 48, *,
                  uid_seed: str | None = None) -> Path:
    """One US Multi-frame Image (PS3.3 A.7) with cine attributes (FrameTime, Frame Increment
    Pointer): 8-bit MONOCHROME2 frames, no Frame of Reference, no patient geometry."""
    seed = [uid_seed] if uid_seed else []
    uid = lambda what: generate_uid(entropy_srcs=[*seed, what] if seed else None)  # noqa: E731
    ds = _base_2d(US_MULTIFRAME_STORAGE, "US", uid("sop"), uid("study"), uid("series"), rows,
                  cols, "SEGBRIDGE^CINE")
    ds.NumberOfFrames = frames
    ds.FrameTime = "33.3"
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    ds.CineRate = 30
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    z, y, x = np.mgrid[:frames, :rows, :cols]
    ds.PixelData = ((x * 3 + y * 5 + z * 7) % 256).astype(np.uint8).tobytes()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def write_dx(path: str | Path, rows: int = 40, cols: int = 56, *, pixel_spacing=(0.2, 0.25),
             imager_pixel_spacing=(0.18, 0.225), uid_seed: str | None = None) -> Path:
    """One single-frame Digital X-Ray image (For Presentation, PS3.3 A.26) with
    PixelSpacing and ImagerPixelSpacing (``None`` leaves one out), no Frame of Reference."""
    seed = [uid_seed] if uid_seed else []
    uid = lambda what: generate_uid(entropy_srcs=[*seed, what] if seed else None)  # noqa: E731
    ds = _base_2d(DX_STORAGE, "DX", uid("sop"), uid("study"), uid("series"), rows, cols,
                  "SEGBRIDGE^DX")
    ds.PresentationIntentType = "FOR PRESENTATION"
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = list(imager_pixel_spacing)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    y, x = np.mgrid[:rows, :cols]
    ds.PixelData = ((x * 37 + y * 11) % 4096).astype(np.uint16).tobytes()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def ellipsoid(shape: tuple[int, int, int], center, radii) -> np.ndarray:
    """Boolean ellipsoid in index space ([z, y, x] centre and radii)."""
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c, r = center, radii
    return ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1


def demo_phantom(shape=(24, 60, 70)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small torso: HU image, a labelmap (liver 1, spine 2, kidney 3) and an overlapping tumor.

    The tumor straddles the liver edge, so it overlaps the liver: the two cannot share one
    labelmap, which is the case viewers tend to get wrong.
    """
    nz, ny, nx = shape
    body = ellipse_body = ellipsoid(shape, (nz / 2, ny / 2, nx / 2), (nz * 2, ny * 0.42, nx * 0.45))
    hu = np.full(shape, -1000.0)
    hu[body] = 20.0
    labels = np.zeros(shape, np.uint8)
    liver = ellipsoid(shape, (nz * 0.45, ny * 0.45, nx * 0.33), (nz * 0.3, ny * 0.2, nx * 0.17))
    spine = np.zeros(shape, bool)
    yy, xx = np.ogrid[:ny, :nx]
    spine[:, ((yy - ny * 0.72) ** 2 + (xx - nx * 0.5) ** 2) <= (min(nx, ny) * 0.07) ** 2] = True
    kidney = ellipsoid(shape, (nz * 0.6, ny * 0.62, nx * 0.7), (nz * 0.15, ny * 0.08, nx * 0.06))
    labels[liver & ellipse_body] = 1
    labels[spine] = 2
    labels[kidney & ~liver] = 3
    hu[labels == 1] = 60.0
    hu[labels == 2] = 700.0
    hu[labels == 3] = 30.0
    tumor = ellipsoid(shape, (nz * 0.45, ny * 0.4, nx * 0.45), (nz * 0.12, ny * 0.07, nx * 0.07))
    hu[tumor] = 35.0
    rng = np.random.default_rng(0)
    hu += rng.normal(0, 8, shape)
    return hu, labels, tumor.astype(np.uint8)


def demo_grid(shape=(24, 60, 70)) -> Grid:
    """An axial grid with anisotropic voxels; Columns (70) is not a multiple of 8 on purpose."""
    return Grid(shape, origin=(-120.0, -100.0, -60.0), spacing=(2.5, 0.9, 0.8),
                direction=np.eye(3), frame_of_reference_uid=generate_uid())


def save_nifti(arr_zyx: np.ndarray, grid: Grid, path: str | Path, *,
               shift: tuple[float, float, float] | None = None) -> None:
    """``arr_zyx`` on ``grid`` as NIfTI (nibabel: an independent writer for test inputs);
    ``shift`` moves it by that many mm in RAS, off the grid on purpose."""
    import nibabel as nib

    from .geometry import flip_lps_ras

    affine = flip_lps_ras(grid.affine)
    if shift is not None:
        affine = affine.copy()
        affine[:3, 3] += shift
    img = nib.Nifti1Image(np.transpose(arr_zyx, (2, 1, 0)), affine)
    img.set_sform(affine, 1)
    img.set_qform(affine, 1)
    nib.save(img, str(path))


def write_collection(folder: str | Path, n: int, *, broken: tuple[int, ...] = (),
                     shape=(12, 40, 48), outputs: tuple[str, ...] = (".dcm",)) -> Path:
    """``n`` small cases (a CT series + a labelmap NIfTI each) and a batch manifest for them.

    Cases whose index is in ``broken`` fail on purpose, alternately with a missing input file
    and with labels on a grid that does not match the CT. Outputs cycle through ``outputs``
    (file suffixes). Returns the manifest path.
    """
    import csv

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"case{i:03d}"
        grid = Grid(shape, origin=(-100.0 + i, -90.0, -50.0 - 2 * i), spacing=(3.0, 1.0, 0.9),
                    direction=np.eye(3), frame_of_reference_uid=generate_uid(
                        entropy_srcs=["collection", name]))
        hu, labels, tumor = demo_phantom(shape)
        labels = np.roll(labels, i % 5, axis=2)
        labels[(tumor > 0) & (labels == 0)] = 4
        write_ct_series(root / name / "ct", hu, grid, patient=f"SEGBRIDGE^{name}",
                        uid_seed=name)
        bad = i in broken
        kind = broken.index(i) % 2 if bad else None
        # broken kind 1: labels half a voxel off the CT grid
        save_nifti(labels, grid, root / name / "labels.nii.gz",
                   shift=(0.45, 0.0, 0.0) if kind == 1 else None)
        inputs = f"{name}/missing.nii.gz" if kind == 0 else f"{name}/labels.nii.gz"
        suffix = outputs[i % len(outputs)]
        rows.append({"case": name, "inputs": inputs, "reference": f"{name}/ct",
                     "output": f"{name}{suffix}", "type": "labelmap" if i % 2 else "binary"})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=["case", "inputs", "reference", "output", "type"])
        w.writeheader()
        w.writerows(rows)
    return manifest
