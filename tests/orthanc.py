"""Start and stop a real Orthanc with its DICOMweb plugin on a loopback port.

Used by the DICOMweb tests and by bench/bench_web.py. Each server gets its own temporary
storage folder. ``.ci/run`` installs the Debian packages ``orthanc`` and ``orthanc-dicomweb``;
``find_orthanc`` locates the binary and the plugin without machine-specific paths.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

PLUGIN_DIRS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins",
               "/usr/lib/x86_64-linux-gnu/orthanc/plugins", "/usr/local/share/orthanc/plugins")


def find_orthanc() -> tuple[str, str] | None:
    """(binary, DICOMweb plugin) or None when Orthanc is not installed."""
    binary = (os.environ.get("SEGBRIDGE_ORTHANC_BIN") or shutil.which("Orthanc")
              or next((p for p in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc") if os.path.exists(p)),
                      None))
    if not binary:
        return None
    for d in PLUGIN_DIRS:
        for name in ("libOrthancDicomWeb.so", "libOrthancDicomWeb.so.1"):
            if os.path.exists(os.path.join(d, name)):
                return binary, os.path.join(d, name)
    return None


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl), for https tests."""
    folder.mkdir(parents=True, exist_ok=True)
    key, crt = folder / "key.pem", folder / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """One Orthanc process; ``url`` is its DICOMweb root."""

    def __init__(self, folder: Path, *, port: int | None = None,
                 users: dict[str, str] | None = None, lua: str | None = None) -> None:
        found = find_orthanc()
        if found is None:
            raise RuntimeError("Orthanc with the DICOMweb plugin is not installed "
                               "(apt-get install orthanc orthanc-dicomweb)")
        self.binary, self.plugin = found
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.users = users or {}
        self.lua = lua
        self.proc: subprocess.Popen | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/dicom-web"

    def _config(self) -> Path:
        cfg = {
            "Name": "segbridge-test", "HttpPort": self.port, "DicomServerEnabled": False,
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "storage"),
            "RemoteAccessAllowed": False, "HttpTimeout": 30, "ConcurrentJobs": 2,
            "Plugins": [self.plugin],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full",
                         "SeriesMetadata": "Full"},
            "AuthenticationEnabled": bool(self.users), "RegisteredUsers": self.users,
            "StableAge": 1,
        }
        if self.lua:
            script = self.folder / "filter.lua"
            script.write_text(self.lua)
            cfg["LuaScripts"] = [str(script)]
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(cfg, indent=1))
        return path

    def _get(self, path: str, data: bytes | None = None):
        """Orthanc's own REST API (JSON), as its first registered user."""
        req = urllib.request.Request(self.root + path, data=data,
                                     method="POST" if data is not None else "GET")
        if self.users:
            user, pw = next(iter(self.users.items()))
            req.add_header("Authorization",
                           "Basic " + b64encode(f"{user}:{pw}".encode()).decode())
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def start(self, wait: float = 30.0) -> Orthanc:
        cfg = self._config()
        log = open(self.folder / "orthanc.log", "ab")
        self.proc = subprocess.Popen([self.binary, str(cfg)], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + wait
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.proc.returncode}; see "
                                   f"{self.folder / 'orthanc.log'}")
            try:
                self._get("/system")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):  # not up yet
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {wait} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def studies(self) -> list[str]:
        return self._get("/studies")

    def series_of(self, study_uid: str) -> list[dict]:
        """Orthanc's own (non-DICOMweb) view of the series of a study."""
        found = self._lookup(study_uid, "Study")
        return [self._get(f"/series/{s}") for s in self._get(f"/studies/{found}")["Series"]]

    def _lookup(self, uid: str, level: str) -> str:
        hits = self._get("/tools/lookup", data=uid.encode())
        return next(h["ID"] for h in hits if h["Type"] == level)

    def __enter__(self) -> Orthanc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def attach(port: int, users: dict[str, str]) -> Orthanc:
    """An Orthanc somebody else started (``.ci/run``): stop() leaves it alone."""
    o = Orthanc.__new__(Orthanc)
    o.binary = o.plugin = None
    o.folder = None
    o.port, o.users, o.lua, o.proc = port, users, None, None
    return o


if __name__ == "__main__":  # .ci/run: python tests/orthanc.py FOLDER USER:PASSWORD
    import sys

    folder, cred = sys.argv[1], sys.argv[2]
    user, pw = cred.split(":", 1)
    server = Orthanc(Path(folder), users={user: pw}).start()
    print(server.port, server.proc.pid)
