"""DICOMweb against a real Orthanc with its DICOMweb plugin: pull, push, remote references.

The shared server is the one ``.ci/run`` started (SEGBRIDGE_TEST_ORTHANC_PORT, with the user
in SEGBRIDGE_TEST_ORTHANC_USER), else one started here; fault tests start their own servers so
they can stop and restart them. Nothing is mocked: faults that a real server cannot be asked
for (a 503 once, an HTML page) come from a small proxy in front of the real Orthanc.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import CT3, DCMQI
from faultproxy import FaultProxy
from orthanc import Orthanc, attach, find_orthanc

import segbridge as sb
from segbridge.errors import RemoteError
from segbridge.geometry import Grid
from segbridge.synthetic import write_ct_series
from segbridge.web.client import WebOptions
from segbridge.web.transfer import pull, push

USER, PASSWORD = "alice", "s3cret-pw"

if find_orthanc() is None and "SEGBRIDGE_TEST_ORTHANC_PORT" not in os.environ:
    pytest.fail("Orthanc with the DICOMweb plugin is needed for these tests "
                "(apt-get install orthanc orthanc-dicomweb; .ci/run installs them)",
                pytrace=False)


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


def creds(pacs) -> WebOptions:
    user, pw = next(iter(pacs.users.items()))
    return WebOptions(user=user, password=pw, retries=1, backoff=0.05, timeout=20)


def cli(*args, env_extra=None, check=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    env.update(env_extra or {})
    r = subprocess.run([sys.executable, "-m", "segbridge", *map(str, args)],
                       capture_output=True, text=True, env=env, timeout=300)
    if check is not None:
        assert r.returncode == check, (r.stdout, r.stderr)
    return r


def auth_env(pacs) -> dict:
    user, pw = next(iter(pacs.users.items()))
    return {"SEGBRIDGE_USER": user, "SEGBRIDGE_PASSWORD": pw}


def content(ds) -> dict:
    """Every data element but the retired group lengths, as raw values."""
    return {e.tag: (e.VR, e.value) for e in ds if e.tag.element != 0}


def by_sop(paths) -> dict[str, pydicom.Dataset]:
    out = {}
    for p in paths:
        ds = pydicom.dcmread(p)
        out[str(ds.SOPInstanceUID)] = ds
    return out


@pytest.fixture(scope="module")
def big_ct(tmp_path_factory) -> Path:
    """A 40-slice synthetic CT (its own study), enough to stop a pull halfway."""
    folder = tmp_path_factory.mktemp("bigct")
    grid = Grid((40, 64, 64), origin=(-30.0, -30.0, -60.0), spacing=(2.0, 0.9, 0.9),
                direction=np.eye(3))
    hu = np.random.default_rng(3).normal(0, 300, grid.shape)
    write_ct_series(folder, hu, grid, uid_seed=f"bigct-{os.getpid()}-{id(folder)}")
    return folder


# --- push and pull -----------------------------------------------------------------------------

def test_push_ct_and_seg_then_pull_back_equal_content(pacs, tmp_path):
    seg = DCMQI / "liver.dcm"
    result = push([CT3, seg], pacs.url, options=creds(pacs))
    assert result.ok and len(result.stored) == 4 and not result.failed
    study = str(pydicom.dcmread(seg).StudyInstanceUID)
    got = pull(pacs.url, study, tmp_path / "pulled", options=creds(pacs))
    local = by_sop([*sorted(CT3.glob("*.dcm")), seg])
    remote = by_sop(got.fetched + got.skipped)
    assert set(local) <= set(remote)
    for uid, ds in local.items():
        a, b = content(ds), content(remote[uid])
        assert a.keys() == b.keys(), uid
        for tag in a:
            assert a[tag] == b[tag], (uid, tag)
        assert ds.file_meta.TransferSyntaxUID == remote[uid].file_meta.TransferSyntaxUID
    # nothing half-written: no temporary names left
    assert not [p for p in (tmp_path / "pulled").rglob(".*")]


def test_pull_cli_resumes_and_names_the_counts(pacs, tmp_path):
    push([CT3], pacs.url, options=creds(pacs))
    ds = pydicom.dcmread(sorted(CT3.glob("*.dcm"))[0])
    url = f"{pacs.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    r = cli("pull", url, "-o", tmp_path / "p", env_extra=auth_env(pacs), check=0)
    assert "pulled 3 instance(s)" in r.stdout
    r = cli("pull", url, "-o", tmp_path / "p", env_extra=auth_env(pacs), check=0)
    assert "pulled 0 instance(s)" in r.stdout and "3 already there" in r.stdout


def test_push_cli_reports_refused_instance_and_exits_1(pacs, tmp_path):
    """An instance of another study sent with --study is refused by Orthanc (0x0110)."""
    ct = sorted(CT3.glob("*.dcm"))
    other = pydicom.dcmread(ct[0])
    other.StudyInstanceUID = pydicom.uid.generate_uid()
    other.SOPInstanceUID = pydicom.uid.generate_uid()
    other.save_as(tmp_path / "other-study.dcm")
    study = str(pydicom.dcmread(ct[0]).StudyInstanceUID)
    r = cli("push", CT3, tmp_path / "other-study.dcm", "--url", pacs.url, "--study", study,
            env_extra=auth_env(pacs))
    assert r.returncode == 1, r.stderr
    assert "stored 3 instance(s)" in r.stdout
    refused = [line for line in r.stderr.splitlines() if line.startswith("refused:")]
    assert len(refused) == 1 and "other-study.dcm" in refused[0]
    assert str(other.SOPInstanceUID) in refused[0] and "0x0110" in refused[0]
    # everything accepted: exit 0
    cli("push", CT3, "--url", pacs.url, "--study", study, env_extra=auth_env(pacs), check=0)


# --- remote references -------------------------------------------------------------------------

def _series_url(pacs, folder: Path) -> str:
    ds = pydicom.dcmread(sorted(p for p in folder.iterdir() if p.is_file())[0])
    return f"{pacs.url}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"


def test_remote_reference_gives_the_same_grid_and_references(pacs):
    push([CT3], pacs.url, options=creds(pacs))
    from segbridge.web.series import read_remote_series

    remote = read_remote_series(_series_url(pacs, CT3), options=creds(pacs))
    local = sb.read_series(CT3)
    assert remote.grid.same_as(local.grid)
    assert [i.sop_instance_uid for i in remote.source.instances] == \
        [i.sop_instance_uid for i in local.source.instances]
    assert remote.source.position_strings == local.source.position_strings
    np.testing.assert_array_equal(remote.pixels(), local.pixels())


def test_convert_with_dicomweb_reference_and_push(pacs, tmp_path):
    push([CT3], pacs.url, options=creds(pacs))
    url = _series_url(pacs, CT3)
    out = tmp_path / "liver-seg.dcm"
    r = cli("convert", DCMQI / "liver_seg.nrrd", "-o", out, "--reference", url,
            "--push", pacs.url, env_extra=auth_env(pacs), check=0)
    assert "stored 1 instance(s)" in r.stdout
    seg = pydicom.dcmread(out)
    study = str(pydicom.dcmread(sorted(CT3.glob("*.dcm"))[0]).StudyInstanceUID)
    assert seg.StudyInstanceUID == study
    series = pacs.series_of(study)
    mine = [s for s in series if s["MainDicomTags"]["SeriesInstanceUID"] ==
            seg.SeriesInstanceUID]
    assert len(mine) == 1 and mine[0]["MainDicomTags"]["Modality"] == "SEG"
    # the stored SEG reads back on the local CT exactly like the NRRD
    got = pull(pacs.url, study, tmp_path / "back", series=str(seg.SeriesInstanceUID),
               options=creds(pacs))
    back = sb.read(got.fetched[0], reference=CT3)
    ref = sb.read(DCMQI / "liver_seg.nrrd", reference=CT3)
    np.testing.assert_array_equal(back.mask(1), ref.mask(ref.segments[0].number))


def test_stats_on_a_remote_image_equal_local(pacs):
    push([CT3], pacs.url, options=creds(pacs))
    url = _series_url(pacs, CT3)
    env = auth_env(pacs)
    remote = cli("stats", DCMQI / "liver.dcm", "-i", url, "--format", "csv", env_extra=env,
                 check=0)
    local = cli("stats", DCMQI / "liver.dcm", "-i", CT3, "--format", "csv", check=0)
    assert remote.stdout == local.stdout and remote.stdout.count("\n") >= 2


# --- authentication ----------------------------------------------------------------------------

def test_wrong_and_missing_credentials_are_one_clear_line(pacs, tmp_path):
    push([CT3], pacs.url, options=creds(pacs))
    url = _series_url(pacs, CT3)
    user = next(iter(pacs.users))
    r = cli("pull", url, "-o", tmp_path / "x", "--user", user, "--password", "wrong-pw-123")
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "401 Unauthorized: the credentials were refused" \
        in r.stderr
    assert "wrong-pw-123" not in r.stderr + r.stdout
    assert not (tmp_path / "x").exists()  # nothing half-written
    r = cli("pull", url, "-o", tmp_path / "x")
    assert r.returncode == 1 and "the server wants credentials" in r.stderr
    # credentials in the URL work and are never echoed
    pw = pacs.users[user]
    with_cred = url.replace("http://", f"http://{user}:{pw}@")
    cli("pull", with_cred, "-o", tmp_path / "y", check=0)
    r = cli("pull", url.replace("http://", f"http://{user}:nope-777@"), "-o", tmp_path / "z")
    assert r.returncode == 1 and "nope-777" not in r.stderr


def test_bearer_token_is_sent(pacs, tmp_path):
    """Orthanc has no token auth built in: the proxy checks the header, then 403 is clear."""
    seen = []

    def plan(method, path, n):
        seen.append(path)
        return (403, "application/json", b"{}")

    with FaultProxy(pacs.root, plan) as proxy:
        r = cli("pull", proxy.root + "/dicom-web", "--study", "1.2.3", "-o", tmp_path / "t",
                "--token", "tok-abc")
        assert proxy.requests and proxy.requests[0][2] == "Bearer tok-abc"
    assert r.returncode == 1 and "403 Forbidden" in r.stderr and "tok-abc" not in r.stderr


def test_ca_bundle_that_does_not_exist_is_named(tmp_path):
    r = cli("pull", "https://127.0.0.1:9/dicom-web", "--study", "1", "-o", tmp_path / "a",
            "--ca-bundle", tmp_path / "nope.pem")
    assert r.returncode == 1 and "nope.pem: no such file" in r.stderr


# --- faults ------------------------------------------------------------------------------------

def test_server_not_running(tmp_path):
    from orthanc import free_port

    port = free_port()
    r = cli("pull", f"http://127.0.0.1:{port}/dicom-web", "--study", "1.2.3", "-o",
            tmp_path / "out", env_extra={"SEGBRIDGE_TIMEOUT": "5"})
    assert r.returncode == 1
    assert r.stderr.strip() == (f"segbridge: error: http://127.0.0.1:{port}/dicom-web: cannot "
                                "reach the server (listing the series of study 1.2.3; tried "
                                "4 times)")
    assert not (tmp_path / "out").exists()
    r = cli("push", CT3, "--url", f"http://127.0.0.1:{port}/dicom-web")
    assert r.returncode == 1 and "cannot reach the server" in r.stderr


def test_server_stopped_halfway_then_resume_completes(tmp_path, big_ct):
    """The server dies in the middle of streaming a series: the proxy in front forwards the
    answer, stops the real Orthanc, and hangs up after 40% of the bytes. The files that
    arrived whole are kept, nothing partial is left; after a restart the same pull fetches only
    the missing instances (one by one, in parallel)."""
    server = Orthanc(tmp_path / "orthanc").start()
    try:
        assert push([big_ct], server.url).ok
        study = str(pydicom.dcmread(next(big_ct.iterdir())).StudyInstanceUID)

        def die_mid_series(method, path, n):
            if "/series/" in path and path.rstrip("/").split("/")[-2] == "series":
                return ("cut", 0.4, server.stop)
            return None

        opts = WebOptions(retries=1, backoff=0.05, timeout=10)
        with FaultProxy(server.root, die_mid_series) as proxy:
            with pytest.raises(RemoteError, match="the connection was cut before the answer"):
                pull(proxy.root + "/dicom-web", study, tmp_path / "p", options=opts,
                     workers=2)
        whole = [p for p in (tmp_path / "p").rglob("*") if p.is_file()]
        assert 5 <= len(whole) < 40 and all(not p.name.startswith(".") for p in whole)
        for p in whole:  # every file there is complete
            assert pydicom.dcmread(p).PixelData
        server.start()
        served = []
        with FaultProxy(server.root, lambda m, p, n: served.append(p)) as proxy:
            again = pull(proxy.root + "/dicom-web", study, tmp_path / "p", options=opts)
        assert len(again.skipped) == len(whole) and len(again.fetched) == 40 - len(whole)
        assert sum("/instances/" in p for p in served) == 40 - len(whole)
        local = by_sop(sorted(big_ct.iterdir()))
        remote = by_sop(sorted((tmp_path / "p").rglob("*.dcm")))
        assert local.keys() == remote.keys()
        for uid in local:
            assert content(local[uid]) == content(remote[uid])
    finally:
        server.stop()


def test_5xx_once_is_retried_and_5xx_always_is_clear(pacs, tmp_path):
    push([CT3], pacs.url, options=creds(pacs))
    study = str(pydicom.dcmread(sorted(CT3.glob("*.dcm"))[0]).StudyInstanceUID)
    failed = []

    def once(method, path, n):
        if "/series/" in path and "/metadata" not in path and method == "GET" and not failed:
            failed.append(path)
            return (503, "text/plain", b"busy")
        return None

    opts = WebOptions(user=creds(pacs).user, password=creds(pacs).password, retries=3,
                      backoff=0.05, timeout=20)
    with FaultProxy(pacs.root, once) as proxy:
        got = pull(proxy.root + "/dicom-web", study, tmp_path / "p", options=opts)
        assert len(got.fetched) == sum(got.series.values()) >= 3 and len(failed) == 1
        assert sum(p == failed[0] for _, p, _ in proxy.requests) == 2  # the retry
    with FaultProxy(pacs.root, lambda m, p, n: (500, "text/plain", b"boom")) as proxy:
        with pytest.raises(RemoteError, match=r"server error 500 \(after 4 attempts\)"):
            pull(proxy.root + "/dicom-web", study, tmp_path / "q", options=opts)
        assert len(proxy.requests) == 4
    assert not (tmp_path / "q").exists()


def test_an_answer_that_is_not_dicom_is_named(pacs, tmp_path):
    page = b"<html><body>Please log in</body></html>"
    with FaultProxy(pacs.root, lambda m, p, n: (200, "text/html", page)) as proxy:
        r = cli("pull", proxy.root + "/dicom-web", "--study", "1.2.3", "-o", tmp_path / "h")
        assert r.returncode == 1
        assert "the server answered text/html, not DICOM" in r.stderr
        assert r.stderr.count("\n") == 1
        r = cli("convert", DCMQI / "liver_seg.nrrd", "-o", tmp_path / "s.dcm", "-r",
                proxy.root + "/dicom-web/studies/1.2/series/3.4")
        assert r.returncode == 1 and "not DICOM" in r.stderr
    assert not (tmp_path / "h").exists() and not (tmp_path / "s.dcm").exists()


def test_reference_url_must_name_a_series(tmp_path):
    r = cli("convert", DCMQI / "liver_seg.nrrd", "-o", tmp_path / "s.dcm", "-r",
            "http://127.0.0.1:9/dicom-web/studies/1.2")
    assert r.returncode == 1 and "must name a series" in r.stderr


def test_batch_cases_push_to_the_pacs_and_take_remote_references(pacs, tmp_path):
    push([CT3], pacs.url, options=creds(pacs))
    url = _series_url(pacs, CT3)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "case,inputs,reference,push\n"
        f"local,{DCMQI / 'liver_seg.nrrd'},{CT3},{pacs.url}\n"
        f"remote,{DCMQI / 'spine_seg.nrrd'},{url},{pacs.url}\n")
    r = cli("batch", manifest, "-o", tmp_path / "out", env_extra=auth_env(pacs))
    assert r.returncode == 0, r.stderr
    assert "2 converted" in r.stdout
    study = str(pydicom.dcmread(sorted(CT3.glob("*.dcm"))[0]).StudyInstanceUID)
    stored = {s["MainDicomTags"]["SeriesInstanceUID"] for s in pacs.series_of(study)}
    for case in ("local", "remote"):
        seg = pydicom.dcmread(tmp_path / "out" / f"{case}.dcm")
        assert seg.SeriesInstanceUID in stored and seg.StudyInstanceUID == study
    # without credentials the push fails, and says so per case
    r = cli("batch", manifest, "-o", tmp_path / "out2")
    assert r.returncode == 1 and r.stderr.count("401 Unauthorized") == 2


def test_tls_is_verified_and_a_ca_bundle_is_taken(pacs, tmp_path):
    """https with a self-signed certificate, terminated by the proxy in front of Orthanc
    (Debian's Orthanc 1.10 crashes on its own https connections here)."""
    from orthanc import self_signed

    cert, key = self_signed(tmp_path / "tls")
    push([CT3], pacs.url, options=creds(pacs))
    study = str(pydicom.dcmread(sorted(CT3.glob("*.dcm"))[0]).StudyInstanceUID)
    with FaultProxy(pacs.root, tls=(str(cert), str(key))) as proxy:
        url = proxy.root + "/dicom-web"
        assert url.startswith("https://")
        r = cli("pull", url, "--study", study, "-o", tmp_path / "no", env_extra=auth_env(pacs))
        assert r.returncode == 1
        assert "TLS certificate is not trusted; give its CA with --ca-bundle" in r.stderr
        assert not (tmp_path / "no").exists()
        r = cli("pull", url, "--study", study, "-o", tmp_path / "yes", "--ca-bundle", cert,
                env_extra=auth_env(pacs), check=0)
        assert "pulled" in r.stdout and len(list((tmp_path / "yes").rglob("*.dcm"))) >= 3


def test_a_server_that_does_not_answer_in_time(pacs, tmp_path):
    import time as _time

    def slow(method, path, n):
        _time.sleep(3)
        return None

    with FaultProxy(pacs.root, slow) as proxy:
        r = cli("pull", proxy.root + "/dicom-web", "--study", "1.2.3", "-o", tmp_path / "s",
                "--timeout", "1", env_extra=auth_env(pacs))
    assert r.returncode == 1 and "no answer within 1 s" in r.stderr, r.stderr


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_stream_parts_splits_multipart_at_any_chunk_size(chunk):
    from segbridge.web.client import multipart_parts, stream_parts

    rng = np.random.default_rng(chunk)
    parts = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (0, 1, 300, 5000, 17)]
    parts.append(b"\r\n--not-the-boundary\r\n")
    boundary = "b0undary-42"
    body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p +
                    b"\r\n" for p in parts) + f"--{boundary}--\r\n".encode()
    ctype = f'multipart/related; type="application/dicom"; boundary="{boundary}"'

    class Answer:  # the two things stream_parts uses of a requests.Response
        headers = {"Content-Type": ctype}

        def iter_content(self, size):
            for i in range(0, len(body), chunk):
                yield body[i:i + chunk]

    assert list(stream_parts(Answer(), chunk)) == parts
    assert multipart_parts(body, ctype) == parts


def test_info_and_validate_take_a_dicomweb_reference(pacs):
    push([CT3], pacs.url, options=creds(pacs))
    url = _series_url(pacs, CT3)
    env = auth_env(pacs)
    for cmd in (["info", "--json"], ["validate", "--json"]):
        remote = cli(*cmd, DCMQI / "liver.dcm", "-r", url, env_extra=env, check=0)
        local = cli(*cmd, DCMQI / "liver.dcm", "-r", CT3, check=0)
        assert remote.stdout.replace(url, "REF") == local.stdout.replace(str(CT3), "REF")


def test_user_mistakes_in_urls_and_secrets_are_one_line_without_the_secret(pacs, tmp_path):
    out = tmp_path / "o"
    cases = [
        (["pull", "http:///dicom-web", "--study", "1"], {}, "no host name in the URL"),
        (["pull", "http://u:pw-99@127.0.0.1:99999/dicom-web", "--study", "1"], {},
         "the port is not a number from 1 to 65535"),
        (["pull", pacs.url, "--study", "1"], {"SEGBRIDGE_TIMEOUT": "abc"},
         "SEGBRIDGE_TIMEOUT='abc' is not a number of seconds"),
        (["pull", pacs.url, "--study", "1"], {"SEGBRIDGE_TOKEN": "topSECRET\r"},
         "the token given contains characters HTTP authentication cannot carry"),
        (["pull", pacs.url, "--study", "1", "--user", "alice", "--password", "pässwörd€"], {},
         "the password given contains characters"),
        (["batch", tmp_path / "m.csv", "-o", tmp_path / "b", "--scheduler", "foo"], {},
         "cannot reach the Dask scheduler at foo"),
    ]
    (tmp_path / "m.csv").write_text("case,inputs\na,x.nii.gz\n")
    for args, env, message in cases:
        r = cli(*args, *(["-o", out] if args[0] == "pull" else []), env_extra=env)
        assert r.returncode == 1, (args, r.stderr)
        assert message in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
        for secret in ("pw-99", "topSECRET", "pässwörd"):
            assert secret not in r.stderr
        assert not out.exists()
    # credentials in the URL that the server refuses are called refused, not missing
    r = cli("pull", pacs.url.replace("http://", "http://alice:wrong@"), "--study", "1", "-o",
            out)
    assert "the credentials were refused" in r.stderr


def test_push_to_a_study_url_guards_the_study_and_a_series_url_is_refused(pacs, tmp_path):
    ds = pydicom.dcmread(sorted(CT3.glob("*.dcm"))[0])
    env = auth_env(pacs)
    r = cli("push", CT3, "--url", f"{pacs.url}/studies/{ds.StudyInstanceUID}", env_extra=env,
            check=0)
    assert "stored 3 instance(s)" in r.stdout
    r = cli("push", CT3, "--url", f"{pacs.url}/studies/1.2.3", env_extra=env)
    assert r.returncode == 1 and r.stderr.count("refused:") == 3
    r = cli("push", CT3, "--url", _series_url(pacs, CT3), env_extra=env)
    assert r.returncode == 1 and "stores into a study, not a series" in r.stderr


def test_ctrl_c_stops_a_pull_without_waiting_for_a_stalled_server(pacs, tmp_path):
    import signal
    import time as _time

    push([CT3], pacs.url, options=creds(pacs))
    study = str(pydicom.dcmread(sorted(CT3.glob("*.dcm"))[0]).StudyInstanceUID)

    def retrieval(path):  # WADO-RS of a whole series (not its QIDO listing or metadata)
        return path.split("?")[0].rstrip("/").split("/")[-2] == "series"

    def stall(method, path, n):
        if retrieval(path):
            _time.sleep(20)
        return None

    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
    env.update(auth_env(pacs))
    with FaultProxy(pacs.root, stall) as proxy:
        p = subprocess.Popen([sys.executable, "-m", "segbridge", "pull", proxy.root +
                              "/dicom-web", "--study", study, "-o", str(tmp_path / "p")],
                             stderr=subprocess.PIPE, text=True, env=env,
                             # a shell's background job ignores SIGINT, and so would the child
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = _time.time() + 30
        while not any(retrieval(q) for _, q, _ in proxy.requests):
            assert _time.time() < deadline
            _time.sleep(0.1)
        t0 = _time.time()
        p.send_signal(signal.SIGINT)
        err = p.communicate(timeout=15)[1]
        stopped_after = _time.time() - t0
    assert p.returncode == 130 and "segbridge: aborted" in err
    assert stopped_after < 10  # not the 20 s the server stalls
    assert not [q for q in (tmp_path / "p").rglob("*") if q.is_file()]


def test_a_server_without_series_retrieval_is_pulled_instance_by_instance(pacs, tmp_path):
    """Some archives answer 406 to a whole-series WADO-RS request: pull falls back to
    fetching the instances one by one, in parallel."""
    push([CT3], pacs.url, options=creds(pacs))
    ds = pydicom.dcmread(sorted(CT3.glob("*.dcm"))[0])

    def refuse_series(method, path, n):
        if path.split("?")[0].rstrip("/").split("/")[-2] == "series":
            return (406, "application/json", b"{}")
        return None

    with FaultProxy(pacs.root, refuse_series) as proxy:
        got = pull(proxy.root + "/dicom-web", str(ds.StudyInstanceUID), tmp_path / "p",
                   series=str(ds.SeriesInstanceUID), options=creds(pacs))
        per_instance = [p for _, p, _ in proxy.requests if "/instances/" in p]
    assert len(got.fetched) == 3 and len(per_instance) == 3
    local = by_sop(sorted(CT3.glob("*.dcm")))
    for path in got.fetched:
        ds2 = pydicom.dcmread(path)
        assert content(ds2) == content(local[str(ds2.SOPInstanceUID)])


def test_dataset_import_pushes_each_case_to_the_pacs(pacs, tmp_path):
    """`dataset import --push`: the SEG made from each prediction is stored in the study of
    its reference on a real Orthanc; without credentials every case fails and says why."""
    from datasets_common import SYNTH_MAP, synthetic_studies, write_map

    from segbridge.datasets.export import export_dataset

    studies = synthetic_studies(tmp_path / "studies", n=2)
    mp = write_map(tmp_path, SYNTH_MAP)
    ds = export_dataset(studies, tmp_path / "Dataset777_Push", labels=mp).folder
    r = cli("dataset", "import", ds / "labelsTr", "-o", tmp_path / "out", "--reference-root",
            studies, "--labels", mp, "--cases", ds / "segbridge_cases.json", "--push",
            pacs.url, env_extra=auth_env(pacs))
    assert r.returncode == 0, r.stderr
    for case in ("case_000", "case_001"):
        seg = pydicom.dcmread(tmp_path / "out" / f"{case}.dcm")
        stored = {s["MainDicomTags"]["SeriesInstanceUID"]
                  for s in pacs.series_of(str(seg.StudyInstanceUID))}
        assert seg.SeriesInstanceUID in stored
    r = cli("dataset", "import", ds / "labelsTr", "-o", tmp_path / "out2", "--reference-root",
            studies, "--labels", mp, "--cases", ds / "segbridge_cases.json", "--push",
            pacs.url)
    assert r.returncode == 1 and r.stderr.count("401 Unauthorized") == 2, r.stderr
