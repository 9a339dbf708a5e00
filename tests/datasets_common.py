"""Builders shared by the dataset tests (tests/test_datasets.py) and the longer ML check
(tests/ml_datasets.py): synthetic DICOM studies with SEG / RTSTRUCT, a manifest over the real
CTs with SEG and RTSTRUCT in ../shared/data, and the maps for both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import CT3, DATA, DCMQI

RTUTILS = DATA / "rt-utils" / "tests" / "mock_data"
DVH = DATA / "pps" / "tests" / "tests_validation" / "benchmark_data" / "DVH-Analysis-Data-Etc"

SYNTH_MAP = ("source,target,number,priority\n"
             "liver,Liver,1,1\n"
             "spinal cord|spine,SpinalCord,2,2\n"
             "gtv|tumour|tumor,GTV,3,3\n")
#: region-based: Organ is the union of labels 1 and 2 (organ and the tumour inside it)
REGION_MAP = ("source,target,number,priority,region\n"
              "organ,Organ,1,1,1|2\n"
              "tumour,Tumour,2,2,2\n")
REAL_MAP = ("source,target,number,priority\n"
            "Liver,Liver,1,1\n"
            "ROI-1,Phantom,2,1\n"
            "Sphere_30_0|Cylinder_30_0,Shape,3,1\n"
            "GREEN,Green,4,1\n"
            "ORANGE,Orange,5,2\n"
            "PURPLE,Purple,6,3\n"
            "LIGHT_BLUE,LightBlue,7,4\n"
            "DARK_BLUE,DarkBlue,8,5\n")


def synthetic_studies(root: Path, n: int = 3, *, nested: bool = False) -> Path:
    """``n`` synthetic CT studies in ``root`` (s0, s1, ...), each with one SEG (even) or
    RTSTRUCT (odd): Liver, spinal cord, GTV (the GTV overlaps the liver), or with ``nested``
    Organ (liver and tumour) and Tumour inside it."""
    import segbridge as sb
    from segbridge.model import Segment
    from segbridge.synthetic import demo_grid, demo_phantom, write_ct_series

    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shape = (10, 40, 44)
        hu, labels, tumor = demo_phantom(shape)
        labels = np.roll(labels, i, axis=2)
        write_ct_series(root / f"s{i}" / "ct", hu, demo_grid(shape), uid_seed=f"study{i}")
        ref = sb.read_series(root / f"s{i}" / "ct")
        if nested:
            masks = [(labels == 1) | (tumor > 0), tumor > 0]
            segs = [Segment(1, "organ"), Segment(2, "tumour")]
        else:
            masks = [labels == 1, labels == 2, tumor > 0]
            segs = [Segment(1, "Liver"), Segment(2, "spinal cord"), Segment(3, "GTV")]
        seg = sb.from_array(np.stack(masks).astype(np.uint8), ref, segments=segs)
        if i % 2:
            sb.write(seg, root / f"s{i}" / "rt.dcm", reference=ref, to="rtstruct")
        else:
            sb.write(seg, root / f"s{i}" / "seg.dcm", reference=ref, profile="slicer")
    return root


def real_manifest(folder: Path, *, with_broken: bool = True) -> Path:
    """A manifest over the real CTs with SEG and RTSTRUCT in ../shared/data."""
    rows = ["case,inputs,reference",
            f"ct3_liver,{DCMQI / 'liver.dcm'},{CT3}",
            f"ct3_overlaps,{DCMQI / 'partial_overlaps.dcm'},{CT3}",
            f"rtutils,{RTUTILS / 'rt.dcm'},{RTUTILS}",
            f"dvh_sphere,{DVH / 'STRUCTURES' / 'Sphere_30_0.dcm'},{DVH / 'CT' / '3 mm CT'}",
            f"dvh_cylinder,{DVH / 'STRUCTURES' / 'Cylinder_30_0.dcm'},{DVH / 'CT' / '3 mm CT'}"]
    if with_broken:  # a SEG given another patient's CT, and a missing file
        rows.append(f"wrong_ct,{DCMQI / 'liver.dcm'},{RTUTILS}")
        rows.append(f"missing,{folder / 'missing.dcm'},{CT3}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def write_map(folder: Path, text: str, name: str = "map.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder / name
