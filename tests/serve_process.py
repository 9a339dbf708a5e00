"""``segbridge serve`` in a subprocess on a free loopback port, for the tests, the benchmark
(bench/bench_serve.py) and the OHIF harness: started, waited for, stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from orthanc import free_port


class Service:
    """The service with its log in ``folder/serve.log`` and its temporary root in
    ``folder/work``. ``env``: variables added to the environment (every SEGBRIDGE_* of the
    caller's is dropped first, so PACS credentials come only from here). ``warm``: also wait
    for the "ready" log line (worker processes warmed up), as a benchmark must."""

    def __init__(self, folder: Path, pacs_url: str, env: dict | None = None, *args: str,
                 warm: bool = False, start_timeout: float = 120.0) -> None:
        import httpx

        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tmp_dir = folder / "work"
        self.log = folder / "serve.log"
        cmd = [sys.executable, "-m", "segbridge", "serve", "--pacs", pacs_url, "--host",
               "127.0.0.1", "--port", str(self.port), "--tmp-dir", str(self.tmp_dir), *args]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SEGBRIDGE_")}
        t0 = time.perf_counter()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log,
                                         env={**clean, **(env or {})}, stdin=subprocess.DEVNULL)
        deadline = time.time() + start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200 and (
                        not warm or '"event": "ready"' in self.log.read_text()):
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"serve did not start within {start_timeout:g} s")
            time.sleep(0.1)
        self.startup_s = time.perf_counter() - t0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tmp_empty(self, wait: float = 10.0) -> bool:
        """True once the service's temporary root is empty (within ``wait`` seconds)."""
        deadline = time.time() + wait
        while time.time() < deadline:
            if not self.tmp_dir.exists() or not any(self.tmp_dir.iterdir()):
                return True
            time.sleep(0.1)
        return False
