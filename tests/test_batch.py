"""Batch conversion from a manifest: local process pool, Dask LocalCluster, and a Dask
scheduler with two workers started as separate processes on loopback."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import segbridge as sb
from segbridge.batch import read_manifest, run_batch
from segbridge.errors import InvalidInputError
from segbridge.synthetic import write_collection

BROKEN = (4, 13)


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    return write_collection(tmp_path_factory.mktemp("collection"), 20, broken=BROKEN,
                            outputs=(".dcm", ".nii.gz"))


def cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    return subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)


def rows_of(results: Path) -> dict[str, dict]:
    with open(results, newline="") as fp:
        return {r["case"]: r for r in csv.DictReader(fp)}


def test_twenty_cases_two_broken(collection, tmp_path):
    out = tmp_path / "out"
    r = cli("batch", collection, "-o", out, "--workers", "2")
    assert r.returncode == 1, r.stderr
    assert "18 converted, 0 already done, 2 failed" in r.stdout
    rows = rows_of(out / "results.csv")
    assert len(rows) == 20
    bad = {f"case{i:03d}" for i in BROKEN}
    assert {c for c, row in rows.items() if row["status"] == "error"} == bad
    assert "missing.nii.gz: no such file" in rows["case004"]["message"]
    assert "does not match the reference grid" in rows["case013"]["message"]
    for c in bad:
        assert "\n" not in rows[c]["message"] and f"case {c}:" in r.stderr
        assert not list(out.glob(f"{c}*"))  # nothing written for a failed case
    for c, row in rows.items():
        if c in bad:
            continue
        outputs = [Path(p) for p in row["outputs"].split(";")]
        assert outputs[0].name.startswith(c) and all(p.is_file() for p in outputs)
        assert int(row["bytes"]) == sum(p.stat().st_size for p in outputs)
        assert float(row["seconds"]) > 0
        # each output holds the case's labels, voxel for voxel, on the case's CT
        case_dir = collection.parent / c
        got = sb.read(outputs[0], reference=case_dir / "ct")
        want = sb.read(case_dir / "labels.nii.gz", reference=case_dir / "ct")
        assert len(got.segments) == len(want.segments)
        for a, b in zip(want.segments, got.segments, strict=True):
            np.testing.assert_array_equal(want.mask(a.number), got.mask(b.number))
    # a rerun skips what is complete and retries only the broken cases
    mtimes = {p: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    r = cli("batch", collection, "-o", out)
    assert r.returncode == 1 and "0 converted, 18 already done, 2 failed" in r.stdout
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items()
               if p.name != "results.csv" and not p.name.startswith("."))
    # an output removed since: that case (only) runs again
    first = Path(rows["case000"]["outputs"].split(";")[0])
    first.unlink()
    result = run_batch(collection, out)
    statuses = {r["case"]: r["status"] for r in result.rows}
    assert statuses["case000"] == "ok" and first.is_file()
    assert sum(s == "skipped" for s in statuses.values()) == 17


def _outputs_equal(a: Path, b: Path, collection: Path) -> None:
    ra, rb = rows_of(a / "results.csv"), rows_of(b / "results.csv")
    assert {c: r["status"] for c, r in ra.items()} == {c: r["status"] for c, r in rb.items()}
    for c, row in ra.items():
        if row["status"] != "ok":
            assert row["message"] == rb[c]["message"]
            continue
        for pa, pb in zip(row["outputs"].split(";"), rb[c]["outputs"].split(";"), strict=True):
            pa, pb = Path(pa), Path(pb)
            assert pa.name == pb.name
            if pa.suffix == ".dcm":  # new UIDs and times each run: compare what they hold
                ref = collection.parent / c / "ct"
                sa, sb_ = sb.read(pa, reference=ref), sb.read(pb, reference=ref)
                assert [s.label for s in sa.segments] == [s.label for s in sb_.segments]
                for x, y in zip(sa.segments, sb_.segments, strict=True):
                    np.testing.assert_array_equal(sa.mask(x.number), sb_.mask(y.number))
            else:
                assert pa.read_bytes() == pb.read_bytes(), pa.name


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def test_dask_local_cluster_and_separate_processes_give_identical_outputs(tmp_path):
    from orthanc import free_port

    collection = write_collection(tmp_path / "c", 8, broken=(5,), outputs=(".dcm", ".nii.gz"))
    r = cli("batch", collection, "-o", tmp_path / "local", "--scheduler", "local",
            "--workers", "2")
    assert r.returncode == 1 and "7 converted, 0 already done, 1 failed" in r.stdout, r.stderr
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    bindir = Path(sys.executable).parent
    dask = [str(bindir / "dask")] if (bindir / "dask").exists() else \
        [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [_start([*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                     "--no-dashboard"], tmp_path / "scheduler.log")]
    try:
        for i in range(2):
            procs.append(_start([*dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                 "--no-dashboard", "--host", "127.0.0.1",
                                 "--local-directory", str(tmp_path / f"w{i}")],
                                tmp_path / f"worker{i}.log"))
        from distributed import Client

        deadline = time.time() + 60
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    if len(client.scheduler_info()["workers"]) == 2:
                        break
            except OSError:
                pass
            assert time.time() < deadline, (tmp_path / "scheduler.log").read_text()[-2000:]
            time.sleep(0.5)
        r = cli("batch", collection, "-o", tmp_path / "remote", "--scheduler", address)
        assert r.returncode == 1 and "7 converted, 0 already done, 1 failed" in r.stdout, \
            r.stderr
        with Client(address, timeout="5s") as client:
            assert len(client.scheduler_info()["workers"]) == 2
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
    _outputs_equal(tmp_path / "local", tmp_path / "remote", collection)
    r = cli("batch", collection, "-o", tmp_path / "nowhere", "--scheduler",
            f"tcp://127.0.0.1:{free_port()}")
    assert r.returncode == 1 and "cannot reach the Dask scheduler" in r.stderr


def test_manifest_errors_are_one_line(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("name,files\na,b\n")
    with pytest.raises(InvalidInputError, match="needs the columns 'case' and 'inputs'"):
        read_manifest(m)
    m.write_text("case,inputs,colour\na,b,red\n")
    with pytest.raises(InvalidInputError, match="unknown column"):
        read_manifest(m)
    m.write_text("case,inputs\na,x.nii\na,y.nii\nb,z.nii\n")
    parsed = read_manifest(m)  # a repeated name fails those lines only
    assert [c["case"] for c in parsed.cases] == ["b"]
    assert [(r["line"], r["message"]) for r in parsed.refused] == [
        (2, "line 2: case 'a' also on line 3"), (3, "line 3: case 'a' also on line 2")]
    r = cli("batch", tmp_path / "none.csv", "-o", tmp_path / "o")
    assert r.returncode == 1 and r.stderr.strip().endswith("none.csv: no such manifest")
    m.write_text("case,inputs,reference\na,one.nii.gz;two.nii.gz,ct\n")
    case = read_manifest(m).cases[0]
    assert case["inputs"] == [str(tmp_path / "one.nii.gz"), str(tmp_path / "two.nii.gz")]
    assert case["reference"] == str(tmp_path / "ct") and case["output"] == "a.dcm"


def test_a_changed_case_runs_again_and_outputs_must_be_unique(tmp_path):
    collection = write_collection(tmp_path / "c", 3)
    out = tmp_path / "out"
    assert not run_batch(collection, out).failed
    rows = list(csv.DictReader(open(collection, newline="")))
    rows[0]["type"] = "binary" if rows[0]["type"] == "labelmap" else "labelmap"  # changed row
    rows[1]["output"] = "renamed.dcm"                                               # new name
    with open(collection, "w", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    again = {r["case"]: r["status"] for r in run_batch(collection, out).rows}
    assert again == {"case000": "ok", "case001": "ok", "case002": "skipped"}
    assert (out / "renamed.dcm").is_file()
    # an input touched since: that case runs again
    label = collection.parent / "case002" / "labels.nii.gz"
    os.utime(label, ns=(label.stat().st_atime_ns, label.stat().st_mtime_ns + 10**9))
    again = {r["case"]: r["status"] for r in run_batch(collection, out).rows}
    assert again == {"case000": "skipped", "case001": "skipped", "case002": "ok"}
    rows[2]["output"] = "renamed.dcm"
    with open(collection, "w", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    # two cases writing one file: both refused before anything runs, nothing rewritten
    mtime = (out / "renamed.dcm").stat().st_mtime_ns
    rows = {r["case"]: r for r in run_batch(collection, out).rows}
    assert rows["case000"]["status"] == "skipped"
    assert rows["case002"]["message"] == ("line 4: writes renamed.dcm, as case 'case001' "
                                          "(line 3) does")
    assert rows["case001"]["status"] == "error" and "case 'case002'" in rows["case001"]["message"]
    assert (out / "renamed.dcm").stat().st_mtime_ns == mtime


def test_a_reference_slice_rewritten_in_place_runs_its_case_again(tmp_path):
    collection = write_collection(tmp_path / "c", 2)
    out = tmp_path / "out"
    assert not run_batch(collection, out).failed
    case = next(r for r in csv.DictReader(open(collection, newline=""))
                if r["case"] == "case001")
    ref = collection.parent / case["reference"]
    assert ref.is_dir()
    folder_times = (ref.stat().st_atime_ns, ref.stat().st_mtime_ns)
    one = sorted(ref.iterdir())[0]
    one.write_bytes(one.read_bytes())  # rewritten in place: the folder's own time is unchanged
    os.utime(one, ns=(one.stat().st_atime_ns, one.stat().st_mtime_ns + 10**9))
    os.utime(ref, ns=folder_times)
    again = {r["case"]: r["status"] for r in run_batch(collection, out).rows}
    assert again == {"case000": "skipped", "case001": "ok"}
