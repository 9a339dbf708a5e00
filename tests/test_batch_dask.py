"""segbridge batch on Dask with a memory limit: ``--scheduler local --memory-limit`` and an
external ``dask scheduler`` + 2 ``dask worker`` processes (started here, killed with their whole
process group on every exit path). Outputs are LABELMAP RLE SEGs read back by highdicom, voxel
for voxel; a rerun converts nothing (and needs no cluster)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from segbridge.batch import run_batch
from segbridge.errors import InvalidInputError
from segbridge.geometry import Grid
from segbridge.synthetic import save_nifti, write_ct_series

SHAPE = (8, 32, 32)
N_LABELS = 5
NAMES = ("a0", "a1", "a2")
#: what Dask logs when a worker reaches its memory limit (pause at 80 %, restart at 95 %)
LIMIT_EVENTS = re.compile(r"Pausing worker|memory budget|Restarting worker|was killed|"
                          r"KilledWorker", re.I)


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """Three cases, each its own tiny CT and random labels 0..5; a manifest for LABELMAP RLE."""
    root = tmp_path_factory.mktemp("dask_collection")
    meta = {"ContentCreatorName": "Test^Dask", "SeriesDescription": "dask",
            "segmentAttributes": [[{
                "labelID": i, "SegmentLabel": f"structure {i}",
                "SegmentAlgorithmType": "AUTOMATIC", "SegmentAlgorithmName": "test",
                "SegmentedPropertyCategoryCodeSequence": {
                    "CodeValue": "91723000", "CodingSchemeDesignator": "SCT",
                    "CodeMeaning": "Anatomical Structure"},
                "SegmentedPropertyTypeCodeSequence": {
                    "CodeValue": "85756007", "CodingSchemeDesignator": "SCT",
                    "CodeMeaning": "Tissue"},
                "recommendedDisplayRGBValue": [40 * i, 200 - 30 * i, 90]}
                for i in range(1, N_LABELS + 1)]]}
    (root / "meta.json").write_text(json.dumps(meta))
    rows = []
    for i, name in enumerate(NAMES):
        grid = Grid(SHAPE, origin=(-20.0 + i, -16.0, -5.0 * i), spacing=(2.5, 1.0, 1.0),
                    direction=np.eye(3),
                    frame_of_reference_uid=generate_uid(entropy_srcs=["dask", name]))
        labels = np.random.default_rng(i).integers(0, N_LABELS + 1, SHAPE).astype(np.uint8)
        write_ct_series(root / name / "ct", np.where(labels > 0, 40.0, -200.0), grid,
                        uid_seed=name)
        save_nifti(labels, grid, root / name / "labels.nii.gz")
        np.save(root / name / "labels.npy", labels)
        rows.append({"case": name, "inputs": f"{name}/labels.nii.gz", "reference": f"{name}/ct",
                     "meta": "meta.json", "type": "labelmap", "profile": "archive",
                     "compression": "rle"})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as fp:
        w = csv.DictWriter(fp, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return manifest


def cli(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    return subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def highdicom_labels(seg_path: Path, ct_dir: Path) -> np.ndarray:
    """The SEG's label map read by highdicom (not segbridge) on the CT's grid, as label values
    (segment "structure N" is N), slices in ascending order along the CT's normal."""
    import highdicom as hd
    import pydicom

    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_dir.iterdir()]
    iop = [float(v) for v in heads[0].ImageOrientationPatient]
    down = np.cross(iop[3:], iop[:3])  # highdicom's slice direction

    def along(d):
        return float(down @ [float(v) for v in d.ImagePositionPatient])

    heads.sort(key=along)
    geometry = hd.VolumeGeometry.from_attributes(
        image_position=[float(v) for v in heads[0].ImagePositionPatient],
        image_orientation=iop, rows=int(heads[0].Rows), columns=int(heads[0].Columns),
        pixel_spacing=[float(v) for v in heads[0].PixelSpacing],
        spacing_between_slices=(along(heads[-1]) - along(heads[0])) / (len(heads) - 1),
        number_of_frames=len(heads), coordinate_system="PATIENT",
        frame_of_reference_uid=heads[0].FrameOfReferenceUID)
    seg = hd.seg.segread(seg_path)
    assert seg.SegmentationType == "LABELMAP"
    assert seg.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"  # RLE Lossless
    volume = seg.get_volume(combine_segments=True).match_geometry(geometry)
    lut = np.full(max(s.SegmentNumber for s in seg.SegmentSequence) + 1, -1, np.int64)
    for s in seg.SegmentSequence:
        m = re.fullmatch(r"structure (\d+)", s.SegmentLabel)
        lut[s.SegmentNumber] = int(m.group(1)) if m else 0 if s.SegmentNumber == 0 else -1
    return lut[volume.array][::-1]


def check_outputs(out: Path, collection: Path) -> dict[str, int]:
    """Every case ok, its SEG voxel-exact against its own labels; output mtimes by path."""
    with open(out / "results.csv", newline="") as fp:
        rows = {r["case"]: r for r in csv.DictReader(fp)}
    assert sorted(rows) == sorted(NAMES)
    mtimes = {}
    for name, row in rows.items():
        assert row["status"] == "ok", row
        seg = Path(row["outputs"])
        got = highdicom_labels(seg, collection.parent / name / "ct")
        want = np.load(collection.parent / name / "labels.npy")
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert np.unique(want).size == N_LABELS + 1
        mtimes[str(seg)] = seg.stat().st_mtime_ns
    return mtimes


def assert_rerun_converts_nothing(r: subprocess.CompletedProcess, out: Path,
                                  mtimes: dict[str, int]) -> None:
    assert r.returncode == 0, r.stderr
    assert f"0 converted, {len(NAMES)} already done, 0 failed" in r.stdout
    assert {p: Path(p).stat().st_mtime_ns for p in mtimes} == mtimes


def test_local_cluster_with_memory_limit(collection, tmp_path):
    out = tmp_path / "out"
    r = cli("batch", collection, "-o", out, "--scheduler", "local", "--workers", "2",
            "--memory-limit", "1GB")
    assert r.returncode == 0, r.stderr
    assert f"{len(NAMES)} converted, 0 already done, 0 failed" in r.stdout
    assert not LIMIT_EVENTS.search(r.stderr), r.stderr[-2000:]
    mtimes = check_outputs(out, collection)
    r = cli("batch", collection, "-o", out, "--scheduler", "local", "--workers", "2",
            "--memory-limit", "1GB")
    assert_rerun_converts_nothing(r, out, mtimes)


def test_memory_limit_reaches_the_local_workers(collection, tmp_path, monkeypatch):
    import distributed

    real, limits = distributed.LocalCluster, []

    def spy(*args, **kwargs):
        cluster = real(*args, **kwargs)
        with distributed.Client(cluster) as client:
            limits.extend(w["memory_limit"] for w in client.scheduler_info()["workers"].values())
        return cluster

    monkeypatch.setattr(distributed, "LocalCluster", spy)
    result = run_batch(collection, tmp_path / "out", scheduler="local", workers=2,
                       memory_limit="700MiB")
    assert [r["status"] for r in result.rows] == ["ok"] * len(NAMES)
    assert limits == [700 * 2**20] * 2


@pytest.mark.parametrize("args, message", [
    (["--memory-limit", "1GB"], "--memory-limit sets the memory of the workers --scheduler local"),
    (["--memory-limit", "1GB", "--scheduler", "tcp://127.0.0.1:9"],
     "an external cluster's workers use their own (dask worker --memory-limit)"),
    (["--memory-limit", "lots", "--scheduler", "local"], "--memory-limit 'lots': give a size"),
    (["--memory-limit", "0", "--scheduler", "local"], "--memory-limit '0': give a size"),
])
def test_memory_limit_refusals_are_one_line(collection, tmp_path, args, message):
    r = cli("batch", collection, "-o", tmp_path / "out", *args)
    assert r.returncode != 0 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_memory_limit_refused_by_the_api(collection, tmp_path):
    with pytest.raises(InvalidInputError, match="give a size"):
        run_batch(collection, tmp_path / "out", scheduler="local", memory_limit="-1GB")
    with pytest.raises(InvalidInputError, match="dask worker --memory-limit"):
        run_batch(collection, tmp_path / "out", memory_limit="1GB")
    assert not (tmp_path / "out").exists()


def _die_with_parent() -> None:
    """In the child: its own process group, and SIGKILL when the test process dies."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextmanager
def external_cluster(tmp_path: Path, workers: int = 2, memory_limit: str = "1GB"):
    """A ``dask scheduler`` and ``workers`` ``dask worker`` processes on loopback; each is
    killed with its process group (nanny and worker process) when the block ends, however."""
    from distributed import Client
    from orthanc import free_port

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).parent / "dask")
    procs: list[subprocess.Popen] = []

    def start(cmd, log):
        with open(log, "wb") as fp:
            procs.append(subprocess.Popen(cmd, stdout=fp, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          preexec_fn=_die_with_parent))

    try:
        start([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
               "--no-dashboard"], tmp_path / "scheduler.log")
        for i in range(workers):
            start([dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                   "--memory-limit", memory_limit, "--no-dashboard", "--host", "127.0.0.1",
                   "--local-directory", str(tmp_path / f"w{i}")], tmp_path / f"worker{i}.log")
        deadline = time.time() + 90
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    if len(client.scheduler_info()["workers"]) == workers:
                        break
            except OSError:
                pass
            assert all(p.poll() is None for p in procs), "a Dask process exited at start"
            assert time.time() < deadline, (tmp_path / "scheduler.log").read_text()[-2000:]
            time.sleep(0.5)
        yield address, [tmp_path / f"worker{i}.log" for i in range(workers)]
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(15)


def test_external_scheduler_and_two_workers(collection, tmp_path):
    out = tmp_path / "out"
    with external_cluster(tmp_path) as (address, logs):
        r = cli("batch", collection, "-o", out, "--scheduler", address)
        assert r.returncode == 0, r.stderr
        assert f"{len(NAMES)} converted, 0 already done, 0 failed" in r.stdout
        mtimes = check_outputs(out, collection)
        r = cli("batch", collection, "-o", out, "--scheduler", address)
        assert_rerun_converts_nothing(r, out, mtimes)
        text = "".join(p.read_text(errors="replace") for p in logs)
        assert "Worker memory limit" not in text and not LIMIT_EVENTS.search(text), text[-2000:]
    # the cluster is gone: a rerun with everything done does not need it
    r = cli("batch", collection, "-o", out, "--scheduler", address)
    assert_rerun_converts_nothing(r, out, mtimes)
