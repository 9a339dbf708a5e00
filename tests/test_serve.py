"""segbridge serve: a real uvicorn process driven over HTTP, against a real Orthanc.

Nothing is mocked. Two services run: ``svc`` (token auth, the shared Orthanc) for the happy
paths and client errors, and ``faulty`` (one worker, no queue) in front of a FaultProxy and an
Orthanc of its own, which the tests make refuse a STOW, stall, and finally stop. What the
service stored is pulled from Orthanc by the test itself and compared with the input mask
voxel for voxel; after every failure Orthanc holds nothing new and the service's temporary
folder is empty.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from faultproxy import FaultProxy
from orthanc import Orthanc, attach, find_orthanc
from serve_process import Service

import segbridge as sb
from segbridge.synthetic import demo_grid, demo_phantom, save_nifti, write_ct_series
from segbridge.web.client import WebOptions
from segbridge.web.transfer import pull, push

USER, PASSWORD = "alice", "s3cret-pw"
TOKEN = "test-token-0123456789abcdef"
SEGMENTS = [{"label": "liver", "value": 1, "color": [220, 120, 80]},
            {"label": "spine", "value": 2, "color": [240, 240, 200]},
            {"label": "kidney", "value": 3, "color": [180, 60, 60]}]

if find_orthanc() is None and "SEGBRIDGE_TEST_ORTHANC_PORT" not in os.environ:
    pytest.fail("Orthanc with the DICOMweb plugin is needed for these tests", pytrace=False)


def instances(pacs) -> int:
    return pacs._get("/statistics")["CountInstances"]


def creds_env(pacs) -> dict:
    user, pw = next(iter(pacs.users.items()))
    return {"SEGBRIDGE_USER": user, "SEGBRIDGE_PASSWORD": pw}


def options(pacs) -> WebOptions:
    user, pw = next(iter(pacs.users.items()))
    return WebOptions(user=user, password=pw, retries=1, backoff=0.05, timeout=20)


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    port = os.environ.get("SEGBRIDGE_TEST_ORTHANC_PORT")
    if port:
        cred = os.environ.get("SEGBRIDGE_TEST_ORTHANC_USER", f"{USER}:{PASSWORD}")
        user, pw = cred.split(":", 1)
        yield attach(int(port), {user: pw})
        return
    server = Orthanc(tmp_path_factory.mktemp("orthanc"), users={USER: PASSWORD}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The demo CT (on disk) with its labels and the overlapping tumor."""
    root = tmp_path_factory.mktemp("serve-data")
    hu, labels, tumor = demo_phantom()
    grid = demo_grid()
    files = write_ct_series(root / "ct", hu, grid)
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    return {"root": root, "ct": root / "ct", "files": files, "grid": grid, "labels": labels,
            "tumor": tumor, "study": str(ds.StudyInstanceUID),
            "series": str(ds.SeriesInstanceUID)}


@pytest.fixture(scope="module")
def ct(pacs, data):
    r = push(data["files"], pacs.url, options=options(pacs))
    assert r.ok
    return data


@pytest.fixture(scope="module")
def svc(pacs, ct, tmp_path_factory):
    folder = tmp_path_factory.mktemp("svc")
    (folder / "tokens").write_text(f"# clients\n{TOKEN}\n")
    s = Service(folder, pacs.url, creds_env(pacs), "--token-file", str(folder / "tokens"),
                "--workers", "2", "--queue", "4", "--max-upload", str(4 << 20),
                "--timeout", "60")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(svc):
    with httpx.Client(base_url=svc.url, timeout=60,
                      headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def post(client, mask: bytes, name: str, ct, *, segments=SEGMENTS, headers=None, **extra):
    req = {"reference": {"study": ct["study"], "series": ct["series"]}, **extra}
    if segments is not None:
        req["segments"] = segments
    return client.post("/v1/segmentations", headers=headers,
                       files={"mask": (name, mask, "application/octet-stream")},
                       data={"request": json.dumps(req)})


def stored(pacs, ct, answer: dict, folder: Path) -> dict[str, np.ndarray]:
    """Every stored SEG series pulled from Orthanc by the test, read on the local CT:
    segment label -> mask."""
    out = {}
    for s in answer["series"]:
        got = pull(pacs.url, answer["study_instance_uid"], folder, series=s["series_instance_uid"],
                   options=options(pacs))
        files = sorted(got.fetched)
        assert len(files) == len(s["sop_instance_uids"]) == 1
        assert str(pydicom.dcmread(files[0]).SOPInstanceUID) == s["sop_instance_uids"][0]
        seg = sb.read(files[0], reference=ct["ct"])
        for segment in seg.segments:
            assert segment.label not in out
            out[segment.label] = seg.mask(segment.number)
    return out


def npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# happy paths
# ---------------------------------------------------------------------------------------------
def test_nifti_stored_and_read_back_equal(pacs, ct, client, svc, tmp_path):
    save_nifti(ct["labels"], ct["grid"], tmp_path / "labels.nii.gz")
    before = instances(pacs)
    r = post(client, (tmp_path / "labels.nii.gz").read_bytes(), "labels.nii.gz", ct,
             headers={"X-Request-Id": "nifti-case-1"}, series_description="AI liver")
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"] == "nifti-case-1"
    a = r.json()
    assert a["verified"] is True and a["study_instance_uid"] == ct["study"]
    assert len(a["series"]) == 1 and instances(pacs) == before + 1
    got = stored(pacs, ct, a, tmp_path / "back")
    for s in SEGMENTS:
        want = ct["labels"] == s["value"]
        assert np.array_equal(got[s["label"]], want), s["label"]
        row = next(x for x in a["segments"] if x["label"] == s["label"])
        assert row["voxels"] == int(want.sum())
        assert row["volume_ml"] == pytest.approx(want.sum() * 2.5 * 0.9 * 0.8 / 1000)
    assert all(f["severity"] != "error" for f in a["findings"])
    assert svc.tmp_empty()
    log = svc.log.read_text()
    line = next(json.loads(x) for x in log.splitlines() if "nifti-case-1" in x)
    assert line["status"] == 201 and line["route"] == "/v1/segmentations"
    assert TOKEN not in log and PASSWORD not in log


def test_npy_overlap_is_split_into_series_all_stored_equal(pacs, ct, client, tmp_path):
    masks = np.stack([ct["labels"] == 1, ct["tumor"] > 0]).astype(np.uint8)
    assert np.any(masks[0] & masks[1])  # they overlap
    before = instances(pacs)
    r = post(client, npy(masks), "masks.npy", ct,
             segments=[{"label": "liver", "value": 1}, {"label": "tumor", "value": 2}])
    assert r.status_code == 201, r.text
    a = r.json()
    assert len(a["series"]) == 2 and instances(pacs) == before + 2
    assert len({s["series_instance_uid"] for s in a["series"]}) == 2
    got = stored(pacs, ct, a, tmp_path / "back")
    assert np.array_equal(got["liver"], masks[0] > 0)
    assert np.array_equal(got["tumor"], masks[1] > 0)


def test_seg_nrrd_and_rtstruct_masks(pacs, ct, client, tmp_path):
    model = sb.from_array(ct["labels"], reference=ct["ct"],
                          segments=[sb.Segment(s["value"], s["label"]) for s in SEGMENTS])
    sb.write(model, tmp_path / "in.seg.nrrd")
    r = post(client, (tmp_path / "in.seg.nrrd").read_bytes(), "in.seg.nrrd", ct, segments=None)
    assert r.status_code == 201, r.text
    got = stored(pacs, ct, r.json(), tmp_path / "back1")
    for s in SEGMENTS:
        assert np.array_equal(got[s["label"]], ct["labels"] == s["value"])
    sb.write(model, tmp_path / "rt.dcm", to="rtstruct")
    want = sb.read(tmp_path / "rt.dcm", reference=ct["ct"])  # contours as segbridge fills them
    r = post(client, (tmp_path / "rt.dcm").read_bytes(), "rt.dcm", ct, segments=None)
    assert r.status_code == 201, r.text
    got = stored(pacs, ct, r.json(), tmp_path / "back2")
    for s in want.segments:
        assert np.array_equal(got[s.label], want.mask(s.number)), s.label


def test_idempotent_retry_stores_once(pacs, ct, client):
    body = npy(ct["labels"])
    before = instances(pacs)
    key = {"Idempotency-Key": "case-42-attempt"}
    first = post(client, body, "labels.npy", ct, headers=key)
    again = post(client, body, "labels.npy", ct, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    # the same token spelled differently in the header is the same client: still one SEG
    spelled = post(client, body, "labels.npy", ct,
                   headers={**key, "Authorization": f"bearer  {TOKEN}"})
    assert spelled.status_code == 201 and spelled.headers["idempotent-replayed"] == "true"
    assert instances(pacs) == before + 1
    other = post(client, npy((ct["labels"] == 1).astype(np.uint8)), "labels.npy", ct,
                 headers=key)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert instances(pacs) == before + 1


def test_convert_validate_and_measure_endpoints(pacs, ct, client, tmp_path):
    r = client.post("/v1/convert", files={"mask": ("m.npy", npy(ct["labels"]))},
                    data={"request": json.dumps({"reference": {"study": ct["study"],
                                                               "series": ct["series"]},
                                                 "segments": SEGMENTS})})
    assert r.status_code == 200 and r.headers["content-type"] == "application/dicom"
    (tmp_path / "c.dcm").write_bytes(r.content)
    seg = sb.read(tmp_path / "c.dcm", reference=ct["ct"])
    assert np.array_equal(seg.mask(1), ct["labels"] == 1)
    masks = np.stack([ct["labels"] == 1, ct["tumor"] > 0]).astype(np.uint8)
    r = client.post("/v1/convert", files={"mask": ("m.npy", npy(masks))},
                    data={"request": json.dumps({"reference": {"study": ct["study"],
                                                               "series": ct["series"]}})})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert len(zipfile.ZipFile(io.BytesIO(r.content)).namelist()) == 2

    r = client.post("/v1/validate", files={"file": ("c.dcm", (tmp_path / "c.dcm").read_bytes())},
                    data={"request": json.dumps({"profile": "ohif", "reference": {
                        "study": ct["study"], "series": ct["series"]}})})
    assert r.status_code == 200, r.text
    assert r.json()["errors"] == 0 and r.json()["path"] == "c.dcm"

    # stats / measure / preview of a SEG stored in the PACS = the library on local files
    a = post(client, npy(ct["labels"]), "labels.npy", ct).json()
    series = a["series"][0]["series_instance_uid"]
    base = f"/v1/studies/{ct['study']}/series/{series}"
    st = client.get(base + "/stats")
    assert st.status_code == 200, st.text
    from segbridge.measure import job
    from segbridge.measure.bidirectional import measure_all
    from segbridge.measure.stats import compute_stats

    local = stored(pacs, ct, a, tmp_path / "back")
    assert set(local) == {s["label"] for s in SEGMENTS}
    seg_file = next((tmp_path / "back").rglob("*.dcm"))
    loaded = job.load([seg_file], str(ct["ct"]))
    want = [s.as_dict() for s in compute_stats(loaded.seg, loaded.image)]
    assert st.json()["segments"] == json.loads(json.dumps(want))
    me = client.get(base + "/measure", params={"segments": "1,3"})
    assert me.status_code == 200
    want = [x.as_dict() for x in measure_all(loaded.seg, [1, 3])]
    assert me.json()["segments"] == json.loads(json.dumps(want))
    png = client.get(base + "/preview.png", params={"segments": "1-2"})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    one = client.get(base + "/preview.png", params={"segments": "1-2", "plane": "sagittal"})
    assert one.status_code == 200 and one.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert one.content != png.content
    assert client.get(base + "/preview.png", params={"plane": "oblique"}).status_code == 422


def test_health_ready_metrics_openapi(client, svc):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/segmentations" in spec["paths"] and "/v1/convert" in spec["paths"]
    m = client.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    text = m.text
    assert 'segbridge_http_requests_total{route="/v1/segmentations",method="POST",' \
           'status="201"}' in text
    assert "segbridge_http_request_duration_seconds_bucket" in text
    assert 'segbridge_conversions_total{endpoint="segmentations",outcome="ok"}' in text
    assert httpx.get(svc.url + "/metrics").status_code == 401


# ---------------------------------------------------------------------------------------------
# client errors: statuses provoked for real, nothing stored, nothing left behind
# ---------------------------------------------------------------------------------------------
def raw(port: int, head: bytes, body_chunks=(), *, close_early: bool = False) -> bytes:
    """Send a request by hand (sizes httpx would not lie about); the answer's first bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(head)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except OSError:  # the server answered and closed while we were still sending
            pass
        if close_early:
            return b""
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except OSError:
            pass
        return answer


def test_client_errors(pacs, ct, client, svc, tmp_path):
    before = instances(pacs)
    body = npy(ct["labels"])

    def check(r, status: int, kind: str, *words: str) -> None:
        assert r.status_code == status, r.text
        doc = r.json()
        assert doc["error"] == kind, doc
        assert "Traceback" not in doc["message"] and "\n" not in doc["message"]
        for w in words:
            assert w in doc["message"], doc["message"]

    check(httpx.post(svc.url + "/v1/segmentations", files={"mask": ("m.npy", body)}), 401,
          "unauthorized")
    check(post(client, body, "m.npy", ct, headers={"Authorization": "Bearer wrong-token-xxxxx"}),
          401, "unauthorized")
    check(post(client, os.urandom(5000), "mask.bin", ct), 415, "unsupported_media_type",
          "mask.bin")
    # on another grid: a shifted NIfTI, and an array of another shape
    save_nifti(ct["labels"], ct["grid"], tmp_path / "off.nii.gz", shift=(7.3, 0, 0))
    check(post(client, (tmp_path / "off.nii.gz").read_bytes(), "off.nii.gz", ct), 422,
          "geometry_mismatch")
    check(post(client, npy(ct["labels"][:, :, :-1]), "small.npy", ct), 422,
          "geometry_mismatch", "small.npy", "[24, 60, 69]", "70x60x24")
    # overlap a label map cannot hold
    masks = np.stack([ct["labels"] == 1, ct["tumor"] > 0]).astype(np.uint8)
    check(post(client, npy(masks), "o.npy", ct, segments=None, type="labelmap",
               profile="slicer"), 422, "invalid_input", "overlap")
    # unknown series, for a conversion and for stats
    r = client.post("/v1/segmentations", files={"mask": ("m.npy", body)},
                    data={"request": json.dumps({"reference": {"study": ct["study"],
                                                               "series": "1.2.3.4.5"}})})
    check(r, 404, "not_found", "1.2.3.4.5")
    check(client.get(f"/v1/studies/{ct['study']}/series/1.2.3.4.6/stats"), 404, "not_found")
    # a reference on another server is refused (the PACS credentials go only to the PACS)
    r = client.post("/v1/segmentations", files={"mask": ("m.npy", body)}, data={
        "request": json.dumps({"reference": "http://198.51.100.7/dicom-web/studies/1.2/series/"
                                            "1.3"})})
    check(r, 422, "invalid_input", "not on this service's PACS")
    # a compressed mask whose header declares far more than the grid (a 1 GB gzip bomb in a
    # small upload) is refused from its header, before a worker inflates it
    import gzip

    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((70, 60, 24, 10000))
    hdr.set_data_dtype(np.uint8)
    bomb = tmp_path / "bomb.nii.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        f.write(hdr.binaryblock + b"\0" * 4)
        f.write(bytes(64 << 20))  # the first 64 MB of the 1 GB it declares
    assert bomb.stat().st_size < 1 << 20
    t = time.time()
    check(post(client, bomb.read_bytes(), "bomb.nii.gz", ct), 422, "invalid_input",
          "bomb.nii.gz", "declares 1008000000 voxels")
    assert time.time() - t < 20
    # JSON nested too deeply: one line (no 500), and its Idempotency-Key is not left blocked
    deep = "[" * 100000 + "]" * 100000
    for _ in range(2):
        r = client.post("/v1/segmentations", headers={"Idempotency-Key": "deep-1"},
                        files={"mask": ("m.npy", body)}, data={"request": deep})
        check(r, 400, "bad_request", "nested")
    inner: object = {"label": "x"}
    for _ in range(40):
        inner = [inner]
    nested = {"reference": {"study": ct["study"], "series": ct["series"]}, "segments": inner}
    r = client.post("/v1/segmentations", files={"mask": ("m.npy", body)},
                    data={"request": json.dumps(nested)})
    check(r, 400, "bad_request", "nested more than")
    assert instances(pacs) == before
    assert svc.tmp_empty()


def test_upload_limits_and_disconnect(pacs, ct, svc):
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    # a Content-Length over --max-upload: 413 before a byte of the body is read
    head = (b"POST /v1/segmentations HTTP/1.1\r\nHost: x\r\n" + auth +
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 3000000000\r\n\r\n")
    answer = raw(svc.port, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"too_large"' in answer
    # chunked (no Content-Length): counted while streaming
    head = (b"POST /v1/segmentations HTTP/1.1\r\nHost: x\r\n" + auth +
            b"Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n")
    part = b"--b\r\nContent-Disposition: form-data; name=\"mask\"; filename=\"m.npy\"\r\n\r\n"
    chunk = b"x" * (1 << 20)
    chunks = [b"%x\r\n%s\r\n" % (len(part), part)] + [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * 6
    answer = raw(svc.port, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert svc.tmp_empty()
    # the client hangs up half way through the upload
    head = (b"POST /v1/segmentations HTTP/1.1\r\nHost: x\r\n" + auth +
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 2000000\r\n\r\n")
    raw(svc.port, head, [part, b"y" * 500_000], close_early=True)
    time.sleep(0.5)
    assert svc.tmp_empty()
    assert httpx.get(svc.url + "/health").status_code == 200


# ---------------------------------------------------------------------------------------------
# the PACS misbehaves: refused STOW, stall, queue full, stopped
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def faulty(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("faulty")
    # Orthanc itself refuses SEGs described "refuse-me" (a real STOW failure with its code)
    lua = ("function ReceivedInstanceFilter(dicom, origin, info)\n"
           "  return dicom.SeriesDescription ~= 'refuse-me'\nend\n")
    server = Orthanc(folder / "orthanc", users={USER: PASSWORD}, lua=lua).start()
    assert push(data["files"], server.url, options=options(server)).ok
    mode = {"stow": None}

    def plan(method, path, n):
        if method != "POST" or "/studies" not in path:
            return None
        if mode["stow"] == "refuse":  # name the SEG being sent (the service's work folder)
            sop = pydicom.dcmread(next((folder / "work").glob("*/seg/*.dcm")),
                                  stop_before_pixels=True).SOPInstanceUID
            answer = {"00081198": {"vr": "SQ", "Value": [{
                "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.66.7"]},
                "00081155": {"vr": "UI", "Value": [str(sop)]},
                "00081197": {"vr": "US", "Value": [0xA700]}}]}}
            return 409, "application/dicom+json", json.dumps(answer).encode()
        if mode["stow"] == "stall":
            time.sleep(6)
            return 500, "text/plain", b"too late"  # never forwarded: nothing stored
        return None

    proxy = FaultProxy(server.root, plan).__enter__()
    svc = Service(folder, proxy.root + "/dicom-web",
                  {**creds_env(server), "SEGBRIDGE_TIMEOUT": "3"},
                  "--workers", "1", "--queue", "0", "--timeout", "8")
    yield svc, server, mode
    svc.stop()
    proxy.__exit__()
    server.stop()


def test_pacs_faults(faulty, data):
    svc, server, mode = faulty
    c = httpx.Client(base_url=svc.url, timeout=60)
    body = npy(data["labels"])
    before = instances(server)

    # STOW refused with a reason code: 502, the code in the message
    mode.update(stow="refuse")
    r = post(c, body, "m.npy", data)
    assert r.status_code == 502, r.text
    assert r.json()["error"] == "store_refused" and "(0xA700)" in r.json()["message"], r.text
    assert instances(server) == before and svc.tmp_empty()

    # Orthanc says "stored" but its filter dropped the SEG: the read-back catches it
    mode.update(stow=None)
    r = post(c, body, "m.npy", data, series_description="refuse-me")
    assert r.status_code == 502, r.text
    assert r.json()["error"] == "read_back" and "sends nothing back" in r.json()["message"]
    assert instances(server) == before and svc.tmp_empty()

    # the STOW stalls: 504; a second request meanwhile finds the only slot taken: 503
    mode.update(stow="stall")
    out = {}
    t = threading.Thread(target=lambda: out.update(r=post(c, body, "m.npy", data)))
    t.start()
    time.sleep(1.0)
    busy = post(c, body, "m.npy", data)
    assert busy.status_code == 503 and busy.json()["error"] == "queue_full"
    assert busy.headers["retry-after"]
    t.join(60)
    assert out["r"].status_code == 504, out["r"].text
    assert out["r"].json()["error"] in ("pacs_timeout", "timeout")
    time.sleep(4)  # the proxy answers the stalled STOW only now, with an error
    assert instances(server) == before and svc.tmp_empty()

    # a client that sends too slowly: 408 once --timeout passes, slot and folder freed
    t0 = time.time()
    head = (b"POST /v1/segmentations HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")
    answer = raw(svc.port, head)
    assert answer.startswith(b"HTTP/1.1 408") and b"upload_timeout" in answer, answer[:300]
    assert time.time() - t0 < 20 and svc.tmp_empty()

    # Orthanc stopped: 503, and /ready says so
    mode.update(stow=None)
    server.stop()
    r = post(c, body, "m.npy", data)
    assert r.status_code == 503 and r.json()["error"] == "pacs_unreachable", r.text
    ready = c.get("/ready")
    assert ready.status_code == 503 and ready.json()["error"] == "pacs_unreachable"
    assert svc.tmp_empty()
    server.start()
    assert instances(server) == before


def test_refuses_an_open_host_without_tokens(tmp_path):
    """No --token-file: loopback only; anything else is one line and exit 1, nothing bound."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    r = subprocess.run([sys.executable, "-m", "segbridge", "serve", "--pacs",
                        "http://127.0.0.1:9/dicom-web", "--host", "0.0.0.0", "--tmp-dir",
                        str(tmp_path)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "--token-file" in r.stderr
    (tmp_path / "short").write_text("abc\n")
    r = subprocess.run([sys.executable, "-m", "segbridge", "serve", "--pacs",
                        "http://127.0.0.1:9/dicom-web", "--token-file", str(tmp_path / "short")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "at least 16" in r.stderr and "abc" not in r.stderr
