"""`segbridge batch` under hostile manifests (issue 11, class 6): every line of the manifest gets
a result line; outputs named twice through different spellings, sharing a sidecar, colliding
with another case's split series or reference copy, leaving -o, or landing on an input are
refused per case; broken lines, bad encodings and an unusable -o are one clean line each."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CT3, DCMQI

LIVER = DCMQI / "liver_seg.nrrd"
SPINE = DCMQI / "spine_seg.nrrd"
OVERLAPS = f"{DCMQI / 'partial_overlaps-1.nrrd'};{DCMQI / 'partial_overlaps-2.nrrd'}"


def batch(manifest: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    r = subprocess.run([sys.executable, "-m", "segbridge", "batch", str(manifest), "-o",
                        str(out), *map(str, extra)], capture_output=True, text=True, env=env,
                       timeout=600)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert "internal error" not in r.stderr + r.stdout, r.stderr
    return r


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def results(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="", encoding="utf-8") as fp:
        return list(csv.DictReader(fp))


def by_case(out: Path) -> dict[str, dict]:
    return {r["case"]: r for r in results(out)}


def one_clean_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    err = r.stderr.strip()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_one_output_through_different_spellings_and_symlinked_folders(tmp_path):
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "link").symlink_to(out / "real")
    m = write(tmp_path / "m.csv", "case,inputs,output", [
        f"plain,{LIVER},same.nii.gz",
        f"dotted,{SPINE},./same.nii.gz",
        f"updown,{SPINE},sub/../same.nii.gz",
        f"absolute,{SPINE},{out / 'same.nii.gz'}",
        f"viareal,{LIVER},real/x.nii.gz",
        f"vialink,{SPINE},link/x.nii.gz",
        f"upper,{LIVER},Case.nii.gz",     # Linux: a different file from case.nii.gz
        f"lower,{SPINE},case.nii.gz",
        f"alone,{LIVER},alone.nii.gz",
    ])
    r = batch(m, out)
    assert r.returncode == 1 and "3 converted, 0 already done, 6 failed" in r.stdout, r.stdout
    rows = by_case(out)
    assert len(results(out)) == 9
    for c in ("plain", "dotted", "updown", "absolute"):
        assert rows[c]["status"] == "error" and "same.nii.gz" in rows[c]["message"]
        others = {"plain", "dotted", "updown", "absolute"} - {c}
        assert any(f"case '{o}'" in rows[c]["message"] for o in others), rows[c]
    assert "case 'vialink'" in rows["viareal"]["message"]
    assert "case 'viareal'" in rows["vialink"]["message"]
    assert {c for c, row in rows.items() if row["status"] == "ok"} == {"upper", "lower", "alone"}
    assert not (out / "same.nii.gz").exists() and not (out / "real" / "x.nii.gz").exists()
    assert not (out / "sub").exists()
    assert all("\n" not in row["message"] for row in rows.values())


def test_shared_sidecars_split_series_and_reference_copies_are_refused_per_case(tmp_path):
    out = tmp_path / "out"
    m = write(tmp_path / "m.csv", "case,inputs,reference,output,assign_uids", [
        f"side1,{LIVER},,side.nii.gz,",
        f"side2,{SPINE},,side.nrrd,",                      # both write side.json
        f"ovl,{OVERLAPS},{CT3},ovl.dcm,",                  # ohif: ovl.dcm + ovl-2.dcm
        f"ovl2,{LIVER},{CT3},ovl-2.dcm,",
        f"ovl3,{LIVER},{CT3},ovl-3.dcm/inside.nii.gz,",    # inside a split file's name
        f"copy,{LIVER},{CT3},t.dcm,yes",                   # t-reference/
        f"intocopy,{SPINE},,t-reference/y.nii.gz,",
        f"solo,{OVERLAPS},{CT3},solo.dcm,",                # splits, and nothing collides
        f"json,{LIVER},,x.json,",                          # no writer for .json
    ])
    r = batch(m, out)
    rows = by_case(out)
    assert r.returncode == 1
    assert {c for c, row in rows.items() if row["status"] == "ok"} == {"solo"}, rows
    assert "case 'side2'" in rows["side1"]["message"] and "side.json" in rows["side1"]["message"]
    assert "case 'side1'" in rows["side2"]["message"]
    assert "case 'ovl2'" in rows["ovl"]["message"] and "ovl-2.dcm" in rows["ovl"]["message"]
    assert "case 'ovl'" in rows["ovl2"]["message"] and "split" in rows["ovl2"]["message"]
    assert "case 'ovl'" in rows["ovl3"]["message"]
    assert "case 'intocopy'" in rows["copy"]["message"]
    assert "case 'copy'" in rows["intocopy"]["message"]
    assert rows["json"]["status"] == "error" and "x.json" in rows["json"]["message"]
    # the premise: an overlapping case really writes NAME-2.dcm
    assert sorted(p.name for p in out.glob("*.dcm")) == ["solo-2.dcm", "solo.dcm"]
    assert rows["solo"]["outputs"].count(";") == 1


def test_assign_uids_column_writes_the_reference_copy(tmp_path):
    """TotalSegmentator's CT has blank study/series UIDs: a case needs assign_uids, and gets
    the corrected copy beside its output, as convert --assign-uids does."""
    from conftest import TOTALSEG

    ct = TOTALSEG / "example_ct_dicom"
    labels = TOTALSEG / "example_seg_dicom.nii.gz"
    if not ct.is_dir():  # the layout MANIFEST.md describes
        ct = next(p.parent for p in TOTALSEG.rglob("*.dcm"))
        labels = next(TOTALSEG.rglob("example_seg_dicom.nii.gz"))
    out = tmp_path / "out"
    m = write(tmp_path / "m.csv", "case,inputs,reference,output,assign_uids", [
        f"blank,{labels},{ct},blank.dcm,",
        f"fixed,{labels},{ct},fixed.dcm,yes",
    ])
    r = batch(m, out)
    rows = by_case(out)
    assert rows["blank"]["status"] == "error" and "assign" in rows["blank"]["message"].lower()
    assert rows["fixed"]["status"] == "ok", rows["fixed"]
    copies = list((out / "fixed-reference").iterdir())
    assert len(copies) == len([p for p in ct.iterdir() if p.is_file()])
    assert str(out / "fixed-reference") in rows["fixed"]["outputs"].split(";")
    assert r.returncode == 1


def test_outputs_never_leave_the_output_folder(tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "esc").symlink_to(elsewhere)
    (out / "file.nii.gz").symlink_to(elsewhere / "file.nii.gz")
    m = write(tmp_path / "m.csv", "case,inputs,output", [
        f"up,{LIVER},../../x.nii.gz",
        f"abs,{LIVER},{elsewhere / 'abs.nii.gz'}",
        f"viasymlink,{LIVER},esc/y.nii.gz",
        f"filelink,{LIVER},file.nii.gz",
        f"self,{LIVER},.",
        f"fine,{LIVER},deep/er/fine.nii.gz",
    ])
    r = batch(m, out)
    rows = by_case(out)
    assert r.returncode == 1
    for c in ("up", "abs", "viasymlink", "filelink"):
        assert rows[c]["status"] == "error" and "outside the output folder" in rows[c]["message"]
    assert rows["self"]["status"] == "error"
    assert rows["fine"]["status"] == "ok" and (out / "deep" / "er" / "fine.nii.gz").is_file()
    assert list(elsewhere.iterdir()) == [] and not (tmp_path.parent / "x.nii.gz").exists()


def test_no_case_writes_over_an_input_of_any_case(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copytree(CT3, out / "ct")
    for name in ("in.nrrd", "other.nrrd", "side.nrrd"):
        shutil.copy(LIVER, out / name)
    (out / "meta.json").write_text(json.dumps({"segmentAttributes": [[{"labelID": 1}]]}))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    m = write(tmp_path / "m.csv", "case,inputs,reference,meta,output", [
        f"own,{out / 'in.nrrd'},,,in.nrrd",                       # its own input
        f"theirs,{out / 'side.nrrd'},,,other.nrrd",               # another case's input
        f"sidecar,{SPINE},,,side.nii.gz",                         # side.json: an input's sidecar
        f"meta,{out / 'other.nrrd'},,{out / 'meta.json'},meta.nii.gz",  # meta.json: a meta file
        f"ctslice,{LIVER},{out / 'ct'},,ct/01.dcm",               # a reference file
        f"newfile,{LIVER},{out / 'ct'},,ct/new.nii.gz",           # a new file there is fine
    ])
    r = batch(m, out)
    rows = by_case(out)
    assert r.returncode == 1
    assert "an input of this case" in rows["own"]["message"]
    assert "case 'theirs'" not in rows["theirs"]["message"] and \
        "case 'meta'" in rows["theirs"]["message"]
    assert "side.json" in rows["sidecar"]["message"]
    assert "case 'theirs'" in rows["sidecar"]["message"]
    assert "meta.json" in rows["meta"]["message"]
    assert "reference series" in rows["ctslice"]["message"]
    assert rows["newfile"]["status"] == "ok", rows["newfile"]
    for p, data in before.items():
        assert p.read_bytes() == data, p
    assert not (out / "in.json").exists() and not (out / "side.json").exists()


def test_an_unterminated_quote_swallows_no_row(tmp_path):
    rows = [f"c{i:02d},{LIVER},c{i:02d}.nii.gz" for i in range(50)]
    rows[9] = f'c09,"{LIVER},c09.nii.gz'      # unterminated
    rows[20] = f'c20,"{LIVER}"x,c20.nii.gz'   # text after the closing quote
    rows[30] = f'c30,"{LIVER}",c30.nii.gz'    # fine
    out = tmp_path / "out"
    r = batch(write(tmp_path / "m.csv", "case,inputs,output", rows), out)
    assert r.returncode == 1 and "48 converted, 0 already done, 2 failed" in r.stdout
    got = results(out)
    assert [row["case"] for row in got] == [f"c{i:02d}" for i in range(50)]
    assert [int(row["line"]) for row in got] == list(range(2, 52))
    bad = {row["case"]: row["message"] for row in got if row["status"] == "error"}
    assert set(bad) == {"c09", "c20"}
    assert bad["c09"].startswith("line 11: a quoted field is not closed")
    assert bad["c20"].startswith("line 22: text follows a closing quote")


def test_bad_rows_never_abort_the_batch(tmp_path):
    out = tmp_path / "out"
    lines = [
        f"good,{LIVER},,good.nii.gz,,",
        "",
        f",{LIVER},,nameless.nii.gz,,",
        f"twice,{LIVER},,twice1.nii.gz,,",
        f"twice,{SPINE},,twice2.nii.gz,,",
        f"badtype,{LIVER},,t.nii.gz,foo,",
        f"badprofile,{LIVER},,p.dcm,,nope",
        f"many,{LIVER},,m.nii.gz,,,extra,fields",
        f"short,{LIVER},,short.nii.gz",            # fewer fields: the rest are empty
        "noinputs,,,,,",
        f"sub/dir,{LIVER},,s.nii.gz,,",
        f".hidden,{LIVER},,h.nii.gz,,",
        "tilde,~nosuchuser-xyz/a.nii.gz,,tl.nii.gz,,",
        ",,,,,",
        f"trailing,{SPINE},,trailing.nii.gz,,,,",  # trailing empty fields are fine
        "   ",
    ]
    m = write(tmp_path / "m.csv", "case,inputs,reference,output,type,profile", lines)
    r = batch(m, out)
    assert r.returncode == 1
    got = results(out)
    assert len(got) == 13  # every line but the blank ones and the one of commas
    status = {(row["case"], row["line"]): row for row in got}
    ok = {c for (c, _), row in status.items() if row["status"] == "ok"}
    assert ok == {"good", "short", "trailing"}
    msg = {int(row["line"]): row["message"] for row in got}
    assert msg[4] == "line 4: empty case name"
    assert "also on line 6" in msg[5] and "also on line 5" in msg[6]
    assert "type 'foo' is not one of" in msg[7] and "profile 'nope'" in msg[8]
    assert "8 fields, but the header names 6 columns" in msg[9]
    assert "no inputs" in msg[11]
    assert "plain name" in msg[12] and "plain name" in msg[13]
    assert "~" in msg[14] and "no such user" in msg[14]
    assert r.stdout.startswith("3 converted, 0 already done, 10 failed")


@pytest.mark.parametrize("content, needle", [
    ("case,inputs\nalpha,caf\xe9.nii.gz\n".encode("latin-1"), "not UTF-8 text (byte 0xE9 on "
                                                              "line 2)"),
    ("case,inputs\na,b.nii.gz\n".encode("utf-16"), "UTF-16"),
    ("case,inputs\na,b.nii.gz\n".encode("utf-16-le"), "NUL bytes"),
    ((CT3 / "01.dcm").read_bytes(), "NUL bytes"),
    (b"", "the manifest is empty"),
    (b"\n  \n", "the manifest is empty"),
    (b"case,inputs\n", "no cases"),
    (b'"case,inputs\na,b\n', "the header is not valid CSV"),
    (b"case,inputs,output,output\na,b,c,d\n", "named twice"),
])
def test_manifest_that_cannot_be_read_is_one_line(tmp_path, content, needle):
    m = tmp_path / "m.csv"
    m.write_bytes(content)
    r = batch(m, tmp_path / "out")
    one_clean_line(r, str(m), needle)
    assert not (tmp_path / "out").exists()


def test_a_manifest_with_a_bom_is_read(tmp_path):
    m = tmp_path / "m.csv"
    m.write_bytes(f"\ufeffcase,inputs,output\r\nbom,{LIVER},bom.nii.gz\r\n".encode())
    r = batch(m, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert by_case(tmp_path / "out")["bom"]["status"] == "ok"


def test_missing_manifest_folder_and_unusable_output_folder_are_one_line(tmp_path):
    m = write(tmp_path / "m.csv", "case,inputs,output", [f"a,{LIVER},a.nii.gz"])
    one_clean_line(batch(tmp_path / "none.csv", tmp_path / "o"), "none.csv: no such manifest")
    one_clean_line(batch(tmp_path, tmp_path / "o"), f"{tmp_path}: is a folder")
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_clean_line(batch(m, afile), f"{afile}: exists and is not a folder")
    one_clean_line(batch(m, afile / "sub"), f"{afile / 'sub'}: cannot create the output folder")
    assert afile.read_text() == "x"
    # the manifest is the results.csv the batch would write
    inplace = write(tmp_path / "results.csv", "case,inputs,output", [f"a,{LIVER},a.nii.gz"])
    text = inplace.read_text()
    one_clean_line(batch(inplace, tmp_path), "results.csv this batch would write")
    assert inplace.read_text() == text


def _old_fingerprint(case: dict) -> str:
    """The fingerprint as the batch computed it before issue 11 (inputs absent, so only the
    row counts): a manifest line that did not change must not run again after an upgrade."""
    row = {k: case[k] for k in ("case", "inputs", "reference", "meta", "output", "type",
                                "profile", "to", "push", "compression", "series",
                                "contour_fill")}
    if row["contour_fill"].lower() in ("", "centre"):
        row.pop("contour_fill")
    return hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()[:32]


def test_fingerprints_of_unchanged_rows_are_stable(tmp_path):
    from segbridge.batch import fingerprint, read_manifest

    m = write(tmp_path / "m.csv", "case,inputs,reference,meta,output,type", [
        "p1,labels/p1.nii.gz;x.nrrd,ct/p1,meta.json,,labelmap",
        "p2,p2.nii.gz,http://pacs/dicom-web/studies/1/series/2,,p2.nii.gz,",
    ])
    cases = read_manifest(m).cases
    assert [c["case"] for c in cases] == ["p1", "p2"]
    for c in cases:
        assert fingerprint(c) == _old_fingerprint(c)
        assert fingerprint({**c, "assign_uids": "no", "target": "/x", "line": 99}) == \
            fingerprint(c)
        assert fingerprint({**c, "assign_uids": "yes"}) != fingerprint(c)


def test_resume_after_a_refusal_and_a_damaged_journal(tmp_path):
    out = tmp_path / "out"
    rows = [f"a,{LIVER},a.nii.gz", f"b,{SPINE},b.nii.gz", f"c,{SPINE},./a.nii.gz"]
    m = write(tmp_path / "m.csv", "case,inputs,output", rows)
    r = batch(m, out)
    assert r.returncode == 1 and "1 converted, 0 already done, 2 failed" in r.stdout
    assert {c: row["status"] for c, row in by_case(out).items()} == {
        "a": "error", "b": "ok", "c": "error"}
    rows[2] = f"c,{SPINE},c.nii.gz"
    write(m, "case,inputs,output", rows)
    with open(out / ".segbridge-batch.jsonl", "ab") as fp:   # a crash, and junk
        fp.write(b'{"case": "b", "sta\n\xff\xfe\x00junk\n[1, 2]\n{"case": 5}\n"text"\n')
    r = batch(m, out)
    assert r.returncode == 0 and "2 converted, 1 already done, 0 failed" in r.stdout, r.stdout
    assert {c: row["status"] for c, row in by_case(out).items()} == {
        "a": "ok", "b": "skipped", "c": "ok"}
