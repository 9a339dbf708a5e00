"""TotalSegmentator's own outputs as input (issue 14 point 4): a folder of per-class mask NIfTIs
(``segmentations/``) and the ``--ml`` multi-label NIfTI with a class map (``--labels``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import TOTALSEG

from segbridge import io
from segbridge.labels import totalsegmentator
from segbridge.synthetic import demo_grid, save_nifti, write_ct_series
from segbridge.totalsegmentator import TOTAL_V2

SEGBRIDGE = str(Path(sys.executable).parent / "segbridge")
SHAPE = (12, 32, 40)
#: pairs of classes whose synthetic masks overlap
OVERLAPS = {"gallbladder": "liver", "kidney_cyst_right": "kidney_right"}


def run(*args):
    return subprocess.run([SEGBRIDGE, *map(str, args)], capture_output=True, text=True)


def one_line_failure(res, out_dir: Path, *needles: str) -> None:
    assert res.returncode != 0
    err = res.stderr.strip()
    assert "Traceback" not in res.stderr + res.stdout
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    assert not [p for p in out_dir.iterdir() if p.suffix in (".dcm", ".tmp")]


def block(i: int) -> np.ndarray:
    """A small box for class i; every third class (i % 3 == 2) is empty."""
    m = np.zeros(SHAPE, np.uint8)
    if i % 3 != 2:
        z, y, x = i % SHAPE[0], 2 + 6 * ((i // 12) % 5), 2 + 4 * (i % 9)
        m[z:z + 2, y:y + 4, x:x + 3] = 1
    return m


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A small CT and a TotalSegmentator-style folder of 117 masks on its grid."""
    root = tmp_path_factory.mktemp("ts")
    grid = demo_grid(SHAPE)
    hu = np.full(SHAPE, -50.0)
    write_ct_series(root / "ct", hu, grid)
    masks = root / "segmentations"
    masks.mkdir()
    arrays = {name: block(i) for i, name in enumerate(TOTAL_V2)}
    for name, other in OVERLAPS.items():
        src = block(TOTAL_V2.index(other))
        assert src.any()
        arrays[name] = src.copy()
        arrays[name][:, :, :1] = 0  # overlaps most of its partner, not all
    for name, arr in arrays.items():
        save_nifti(arr, grid, masks / f"{name}.nii.gz")
    return root, grid


def nib_mask(path: Path) -> np.ndarray:
    """A mask file read by nibabel, as a [z, y, x] boolean array."""
    return np.transpose(np.asarray(nib.load(str(path)).dataobj), (2, 1, 0)) != 0


def read_back(files: list[Path], ct: Path) -> dict[str, tuple]:
    """Every segment of the written SEG(s): label -> (segment, mask)."""
    out = {}
    for f in files:
        seg = io.read(f, reference=ct)
        for s in seg.segments:
            assert s.label not in out
            out[s.label] = (s, seg.mask(s.number))
    return out


def test_folder_to_seg_names_codes_voxels(case, tmp_path):
    root, _ = case
    masks, ct = root / "segmentations", root / "ct"
    res = run("convert", masks, "-r", ct, "-o", tmp_path / "seg.dcm", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    written = [Path(p) for p in report["written"]]
    assert len(written) >= 2  # ohif: overlapping segments go into a second SEG
    nonempty = [n for n in TOTAL_V2 if nib_mask(masks / f"{n}.nii.gz").any()]
    empty = sorted(set(TOTAL_V2) - set(nonempty))
    assert report["segments"] == len(nonempty) and len(empty) > 30
    assert any(f"{len(empty)} of 117 masks are empty, left out" in n for n in report["notes"])
    got = read_back(written, ct)
    assert sorted(got) == sorted(nonempty)
    ts = totalsegmentator()
    for name in nonempty:
        s, mask = got[name]
        want = ts.by_name[name]
        assert (s.category, s.type, s.type_modifier, s.anatomic_region) == (
            want.category, want.type, want.type_modifier, want.anatomic_region), name
        assert s.type.meaning == want.type.meaning
        assert s.algorithm_type == "AUTOMATIC" and s.algorithm_name == "TotalSegmentator"
        assert np.array_equal(mask, nib_mask(masks / f"{name}.nii.gz")), name
    assert got["kidney_right"][0].type_modifier.meaning == "Right"
    assert got["kidney_cyst_right"][0].anatomic_region.meaning == "Kidney"
    for f in written:
        val = run("validate", f, "-r", ct, "--profile", "ohif")
        assert val.returncode == 0, val.stdout
        assert ": 0 errors" in val.stdout.splitlines()[-1]


def test_folder_keep_empty(case, tmp_path):
    root, _ = case
    seg = io.read(root / "segmentations", reference=root / "ct", keep_empty=True)
    assert [s.label for s in seg.segments] == list(TOTAL_V2)  # class-value order
    assert [s.number for s in seg.segments] == list(range(1, 118))
    empty = [s.label for s in seg.segments if not seg.mask(s.number).any()]
    assert empty and all(TOTAL_V2.index(n) % 3 == 2 for n in empty)
    assert len(seg.layers) == 2
    assert any("kept as empty segments" in n for n in seg.report.notes)


def test_folder_of_other_names_and_ignored_files(case, tmp_path):
    root, grid = case
    masks = tmp_path / "masks"
    masks.mkdir()
    for i, name in ((0, "lesion_b"), (1, "lesion_a"), (3, "liver")):
        save_nifti(block(i), grid, masks / f"{name}.nii")
    (masks / "statistics.json").write_text("{}")
    (masks / "preview_total.png").write_bytes(b"\x89PNG")
    (masks / "sub").mkdir()
    os.symlink(masks / "liver.nii", masks / "liver_copy.nii.gz")  # inside the folder: fine
    seg = io.read(masks)
    assert [s.label for s in seg.segments] == ["lesion_a", "lesion_b", "liver", "liver_copy"]
    assert all(s.type.value == "85756007" for s in seg.segments)  # no codes: defaults
    assert any("ignored 3 entries" in n and "statistics.json" in n and "preview_total.png" in n
               for n in seg.report.notes)
    labels = tmp_path / "labels.csv"
    labels.write_text("name,category,type,color\n"
                      "lesion_a,SCT^49755003^Morphologically Altered Structure,"
                      "SCT^108369006^Neoplasm,255 0 0\n")
    seg = io.read(masks, labels=labels)
    a = seg.segments[0]
    assert (a.label, a.type.meaning, a.color) == ("lesion_a", "Neoplasm", (255, 0, 0))
    # names the map does not hold stay uncoded, even TotalSegmentator's (the map is the user's)
    assert seg.segments[2].type.meaning == "Tissue"
    assert any("3 file name(s) not in" in w and "lesion_b, liver" in w
               for w in seg.report.warnings)


def test_not_nifti_in_folder(case, tmp_path):
    root, _ = case
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("liver", "spleen"):
        (masks / f"{name}.nii.gz").symlink_to(root / "segmentations" / f"{name}.nii.gz")
    out = tmp_path / "out"
    out.mkdir()
    # the links point outside the folder: refused, naming the first
    one_line_failure(run("convert", masks, "-r", root / "ct", "-o", out / "s.dcm"), out,
                     "liver.nii.gz", "outside the folder")
    for p in masks.iterdir():
        p.unlink()
    save_nifti(block(0), root_grid(root), masks / "liver.nii.gz")
    (masks / "spleen.nii.gz").write_text("not a nifti")
    one_line_failure(run("convert", masks, "-r", root / "ct", "-o", out / "s.dcm"), out,
                     "spleen.nii.gz")


def root_grid(root: Path):
    return io.load_reference(root / "ct").grid


def test_output_may_not_replace_a_mask(case, tmp_path):
    root, grid = case
    masks = tmp_path / "masks"
    masks.mkdir()
    save_nifti(block(0), grid, masks / "liver.nii.gz")
    before = (masks / "liver.nii.gz").read_bytes()
    res = run("convert", masks, "-o", masks / "liver.nii.gz")
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert (masks / "liver.nii.gz").read_bytes() == before


def test_mask_on_another_grid(case, tmp_path):
    root, grid = case
    masks = tmp_path / "masks"
    masks.mkdir()
    save_nifti(block(0), grid, masks / "liver.nii.gz")
    save_nifti(block(1), grid, masks / "spleen.nii.gz", shift=(0.4, 0.0, 0.0))
    out = tmp_path / "out"
    out.mkdir()
    one_line_failure(run("convert", masks, "-r", root / "ct", "-o", out / "s.dcm"), out,
                     "spleen.nii.gz")


def test_multilabel_with_class_map(case, tmp_path):
    root, grid = case
    ct = root / "ct"
    lab = np.zeros(SHAPE, np.uint8)
    for v in (1, 2, 3, 5, 117):
        lab[block(v - 1 if v != 117 else 0) != 0] = v
    save_nifti(lab, grid, tmp_path / "ml.nii.gz")
    classmap = tmp_path / "classmap.json"  # TotalSegmentator's class_map["total"] as JSON
    classmap.write_text(json.dumps({str(v): n for v, n in enumerate(TOTAL_V2, start=1)}))
    for labels in (classmap, "totalsegmentator"):
        out = tmp_path / f"ml-{Path(labels).stem}.dcm"
        res = run("convert", tmp_path / "ml.nii.gz", "-r", ct, "--labels", labels, "-o", out)
        assert res.returncode == 0, res.stderr
        got = read_back([out], ct)
        present = sorted(set(np.unique(lab)) - {0})
        assert sorted(got) == sorted(TOTAL_V2[v - 1] for v in present)
        for v in present:
            s, mask = got[TOTAL_V2[v - 1]]
            assert s.type == totalsegmentator().by_value[v].type
            assert np.array_equal(mask, lab == v)
    # a label map replaces the dcmqi sidecar that travels with a volume
    io.write(io.read(tmp_path / "ml.nii.gz"), tmp_path / "side.nii.gz")
    assert (tmp_path / "side.json").exists()
    seg = io.read(tmp_path / "side.nii.gz", labels="totalsegmentator")
    assert [s.label for s in seg.segments] == [TOTAL_V2[v - 1] for v in present]
    with pytest.raises(Exception, match="not both"):
        io.read(tmp_path / "ml.nii.gz", labels=classmap, meta={})


def test_label_map_files_refused_clearly(tmp_path):
    from segbridge.errors import InvalidInputError
    from segbridge.labels import read_labels

    bad = tmp_path / "bad.csv"
    bad.write_text("label,name,type\n1,x,SCT^1^Thing\n")
    with pytest.raises(InvalidInputError, match="category and a type"):
        read_labels(bad)
    bad.write_text("label,name\nfoo,x\n")
    with pytest.raises(InvalidInputError, match="line 2"):
        read_labels(bad)
    js = tmp_path / "bad.json"
    js.write_text('{"1": {"name": "x", "color": [1, 2]}}')
    with pytest.raises(InvalidInputError, match="colour"):
        read_labels(js)


def test_published_snomed_csv_layout_reads(tmp_path):
    """TotalSegmentator's own mapping file layout (dotted columns) is a --labels file."""
    from segbridge.labels import read_labels
    from segbridge.totalsegmentator import SNOMED_CSV

    p = tmp_path / "totalsegmentator_snomed_mapping.csv"
    p.write_text(SNOMED_CSV)
    m = read_labels(p)
    assert len(m.by_name) == 117 and not m.by_value
    assert m.by_name["rib_left_1"].type.value == "48535007"
    assert m.by_name["rib_left_1"].type_modifier.value == "7771000"


REAL_CT = TOTALSEG / "example_ct_dicom"


def test_real_totalsegmentator_output(tmp_path):
    """The reference multi-label output on its real CT, and the same split into a folder of
    per-class masks (TotalSegmentator's default layout)."""
    assert REAL_CT.is_dir(), f"{REAL_CT}: the shared TotalSegmentator reference files are missing"
    ml = TOTALSEG / "example_seg_dicom.nii.gz"
    lab = np.transpose(np.asarray(nib.load(str(ml)).dataobj), (2, 1, 0))
    img = nib.load(str(ml))
    masks = tmp_path / "segmentations"
    masks.mkdir()
    for v, name in enumerate(TOTAL_V2[:40], start=1):  # 40 classes, some absent
        arr = (np.asarray(img.dataobj) == v).astype(np.uint8)
        nib.save(nib.Nifti1Image(arr, img.affine, img.header), str(masks / f"{name}.nii.gz"))
    for src, extra in ((ml, ["--labels", "totalsegmentator"]), (masks, [])):
        out = tmp_path / f"{Path(src).name.split('.')[0]}.dcm"
        res = run("convert", src, "-r", REAL_CT, "--assign-uids", *extra, "-o", out, "--json")
        assert res.returncode == 0, res.stderr
        ref = tmp_path / f"{out.stem}-reference"
        got = read_back([out], ref)
        base = io.read(ml, reference=ref)  # the single-NIfTI path, tested elsewhere
        values = [v for v in sorted(set(np.unique(lab)) - {0})
                  if src == ml or v <= 40]
        assert sorted(got) == sorted(TOTAL_V2[v - 1] for v in values)
        for v in values:
            s, mask = got[TOTAL_V2[v - 1]]
            assert s.type == totalsegmentator().by_value[v].type
            assert np.array_equal(mask, base.mask(v)), TOTAL_V2[v - 1]
            assert mask.sum() == (lab == v).sum()
        val = run("validate", out, "-r", ref, "--profile", "ohif")
        assert val.returncode == 0 and ": 0 errors" in val.stdout.splitlines()[-1], val.stdout
