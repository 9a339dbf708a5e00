"""A small HTTP proxy in front of a real server that can answer wrongly on purpose.

Fault tests put it between segbridge and Orthanc: ``plan(method, path, n)`` (n counts the
requests so far) returns None to forward the request, (status, content type, body) to answer
instead (a 503 once, an HTML login page...), or ("cut", fraction, then) to forward, call
``then()`` (e.g. stop the server) and send only that fraction of the answer before hanging up. Every request's method, path and Authorization
header are recorded.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "content-length", "host"}


class FaultProxy:
    def __init__(self, target: str, plan=None, tls: tuple[str, str] | None = None) -> None:
        self.target = target.rstrip("/")
        self.plan = plan or (lambda method, path, n: None)
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length", 0) or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self) -> None:
                body = self._body()
                with proxy._lock:
                    n = len(proxy.requests)
                    proxy.requests.append((self.command, self.path,
                                           self.headers.get("Authorization")))
                fault = proxy.plan(self.command, self.path, n)
                cut = None
                if fault is not None and fault[0] == "cut":
                    cut, fault = fault, None  # forward, then die half way through the answer
                if fault is not None:
                    status, ctype, payload = fault
                    self._answer(status, {"Content-Type": ctype}, payload)
                    return
                req = urllib.request.Request(proxy.target + self.path, data=body or None,
                                             method=self.command)
                for k, v in self.headers.items():
                    if k.lower() not in HOP:
                        req.add_header(k, v)
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        payload = r.read()
                        if cut is not None:
                            _, fraction, then = cut
                            then()
                            self._answer(r.status, dict(r.headers), payload,
                                         send=int(len(payload) * fraction))
                            self.close_connection = True
                            return
                        self._answer(r.status, dict(r.headers), payload)
                except urllib.error.HTTPError as e:
                    self._answer(e.code, dict(e.headers), e.read())

            def _answer(self, status: int, headers: dict, payload: bytes,
                        send: int | None = None) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload if send is None else payload[:send])

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.tls = tls
        if tls:  # terminate https here with the given certificate and key
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def root(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
