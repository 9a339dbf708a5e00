"""A DICOMweb endpoint with the error handling a command line needs.

dicomweb-client does the protocol (QIDO-RS queries, WADO-RS multipart retrieval, STOW-RS
encoding); this module adds what it leaves to the caller: HTTP basic or bearer authentication
from flags or environment variables, TLS verification (on by default, with a CA bundle option),
a timeout on every request, retries with exponential back-off on connection errors and 5xx
answers, and one clear line when the server cannot be reached, refuses the credentials, or
answers with something that is not DICOM. Secrets never appear in a message: URLs are shown
without their user-info part.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..errors import InvalidInputError, RemoteError

DICOM_TYPES = ("application/dicom+json", "application/json", "multipart/related",
               "application/dicom", "application/dicom+xml")
RETRY_CODES = (408, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class WebOptions:
    """How to talk to a DICOMweb server; secrets are never printed (repr hides them)."""

    user: str | None = None
    password: str | None = None
    token: str | None = None
    ca_bundle: str | None = None
    timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.3

    def __repr__(self) -> str:
        auth = "token" if self.token else ("basic" if self.user else "none")
        return f"WebOptions(auth={auth}, ca_bundle={self.ca_bundle!r}, timeout={self.timeout})"

    @classmethod
    def from_env(cls, user: str | None = None, password: str | None = None,
                 token: str | None = None, ca_bundle: str | None = None,
                 timeout: float | None = None) -> WebOptions:
        """Flags win over SEGBRIDGE_USER / _PASSWORD / _TOKEN / _CA_BUNDLE / _TIMEOUT."""
        env = os.environ.get
        if timeout is None:
            text = env("SEGBRIDGE_TIMEOUT", "") or "30"
            try:
                timeout = float(text)
            except ValueError:
                raise InvalidInputError(f"SEGBRIDGE_TIMEOUT={text!r} is not a number of "
                                        "seconds") from None
        if not timeout > 0:
            raise InvalidInputError(f"the timeout must be more than 0 seconds, got {timeout:g}")
        options = cls(user=user or env("SEGBRIDGE_USER") or None,
                      password=password if password is not None else env("SEGBRIDGE_PASSWORD"),
                      token=token or env("SEGBRIDGE_TOKEN") or None,
                      ca_bundle=ca_bundle or env("SEGBRIDGE_CA_BUNDLE") or None,
                      timeout=timeout)
        options.check()
        return options

    def check(self) -> None:
        """Secrets that cannot go into an HTTP header are refused here, without echoing them
        (a token file saved with a Windows line end, a password outside Latin-1)."""
        for what, value in (("user", self.user), ("password", self.password),
                            ("token", self.token)):
            if value is None:
                continue
            bad = any(c in value for c in "\r\n\0")
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                bad = True
            if bad or (what == "user" and ":" in value):
                raise InvalidInputError(f"the {what} given contains characters HTTP "
                                        "authentication cannot carry (line breaks, ':' in a "
                                        "user name, or non-Latin-1 letters)")

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("user", "password", "token", "ca_bundle",
                                              "timeout", "retries", "backoff")}


_defaults: WebOptions | None = None


def set_default_options(options: WebOptions | None) -> None:
    """Options used where none are passed (the CLI sets them from its flags)."""
    global _defaults
    _defaults = options


def default_options() -> WebOptions:
    return _defaults if _defaults is not None else WebOptions.from_env()


def is_url(text) -> bool:
    return isinstance(text, str) and text.lower().startswith(("http://", "https://"))


def public(url: str) -> str:
    """``url`` without user-info (user:password@)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def split_series_url(url: str) -> tuple[str, str | None, str | None]:
    """``.../studies/<uid>[/series/<uid>]`` -> (service root, study, series)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    study = series = None
    if "/studies/" in path:
        root, rest = path.split("/studies/", 1)
        bits = rest.split("/")
        study = bits[0] or None
        if len(bits) >= 3 and bits[1] == "series":
            series = bits[2] or None
        path = root
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), study, series


class NotDicomAnswer(Exception):
    """A 2xx answer whose content type is not a DICOMweb one."""

    def __init__(self, url: str, content_type: str) -> None:
        super().__init__(f"{url}: {content_type}")
        self.url = url
        self.content_type = content_type


def _check_type(response, *args, **kwargs):
    if 200 <= response.status_code < 300:  # (content not touched: it may be a stream)
        ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype and not ctype.startswith(DICOM_TYPES):
            raise NotDicomAnswer(response.url, ctype)
    return response


def _new_session():
    """A requests session whose CA bundle wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
    (requests lets the environment override a session's own bundle)."""
    import requests

    class Session(requests.Session):
        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if isinstance(self.verify, str) and verify in (None, True):
                settings["verify"] = self.verify
            return settings

    return Session()


class Endpoint:
    """One DICOMweb service root; a dicomweb-client per thread (sessions are not shared)."""

    def __init__(self, url: str, options: WebOptions | None = None) -> None:
        if not is_url(url):
            raise InvalidInputError(f"{public(url) if '@' in url else url}: not an http(s) URL")
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:
            raise InvalidInputError(f"{public(url)}: the port is not a number from 1 to 65535")
        if not parts.hostname:
            raise InvalidInputError(f"{public(url)}: no host name in the URL")
        self.url = url.rstrip("/")
        self.options = options or default_options()
        self.options.check()
        if self.options.ca_bundle and not os.path.exists(self.options.ca_bundle):
            raise InvalidInputError(f"--ca-bundle {self.options.ca_bundle}: no such file")
        self._local = threading.local()

    @property
    def client(self):
        c = getattr(self._local, "client", None)
        if c is None:
            c = self._local.client = self._make_client()
        return c

    def request(self, method: str, path: str, *, headers: dict | None = None,
                data: bytes | None = None, stream: bool = False):
        """One raw HTTP request below the root, with the same auth, TLS, timeout and retries
        as the dicomweb-client calls (for transfers that should not decode every instance)."""
        import requests

        session = self.client._session
        o = self.options
        url = self.client.base_url + path
        for attempt in range(o.retries + 1):
            response = session.request(method, url, headers=headers, data=data,
                                       timeout=o.timeout, stream=stream)
            if response.status_code in RETRY_CODES and attempt < o.retries:
                time.sleep(o.backoff * 2 ** attempt)
                continue
            if response.status_code >= 400:
                raise requests.exceptions.HTTPError(f"{response.status_code}",
                                                    response=response)
            return response
        raise AssertionError("unreachable")

    def _make_client(self):
        from dicomweb_client.api import DICOMwebClient
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        o = self.options
        session = _new_session()
        parts = urlsplit(self.url)
        if o.token:
            session.headers["Authorization"] = f"Bearer {o.token}"
        elif o.user:
            session.auth = (o.user, o.password or "")
        elif parts.username:
            session.auth = (parts.username, parts.password or "")
        session.verify = o.ca_bundle or True
        retry = Retry(total=None, connect=o.retries, read=0, status=0, other=0, redirect=3,
                      backoff_factor=o.backoff, allowed_methods=None)
        for scheme in ("http://", "https://"):
            session.mount(scheme, HTTPAdapter(max_retries=retry))
        session.hooks["response"].append(_check_type)
        clean = urlunsplit((parts.scheme, parts.hostname + (f":{parts.port}" if parts.port
                                                             else ""), parts.path, "", ""))
        client = DICOMwebClient(clean, session=session, timeout=o.timeout)
        client.set_http_retry_params(retry=o.retries > 0, max_attempts=o.retries + 1,
                                     wait_exponential_multiplier=int(o.backoff * 1000),
                                     retriable_error_codes=RETRY_CODES)
        return client

    def call(self, what: str, fn, *args, **kwargs):
        """Run a dicomweb-client call; every failure becomes one RemoteError line."""
        import requests

        where = public(self.url)
        try:
            return fn(self.client, *args, **kwargs)
        except NotDicomAnswer as exc:
            raise RemoteError(f"{where}: {what}: the server answered {exc.content_type}, not "
                              "DICOM; is this the DICOMweb root (e.g. .../dicom-web)?") from None
        except requests.exceptions.ChunkedEncodingError:
            raise RemoteError(f"{where}: {what}: the connection was cut before the answer was "
                              "complete (what arrived whole is kept; run the same command "
                              "again to resume)") from None
        except requests.exceptions.SSLError:
            raise RemoteError(f"{where}: {what}: the server's TLS certificate is not trusted; "
                              "give its CA with --ca-bundle") from None
        except requests.exceptions.ConnectionError as exc:
            from urllib3.exceptions import ReadTimeoutError

            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            if isinstance(reason, ReadTimeoutError):  # urllib3 gave up on a read
                raise RemoteError(f"{where}: {what}: no answer within "
                                  f"{self.options.timeout:g} s") from None
            raise RemoteError(f"{where}: cannot reach the server ({what}; tried "
                              f"{self.options.retries + 1} times)") from None
        except requests.exceptions.Timeout:
            raise RemoteError(f"{where}: {what}: no answer within {self.options.timeout:g} s")\
                from None
        except requests.exceptions.HTTPError as exc:
            raise self.http_error(what, exc.response) from None
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL,
                UnicodeError) as exc:
            # our side: the texts of these can hold a header value (a secret), never show them
            raise RemoteError(f"{where}: {what}: the request could not be built "
                              f"({type(exc).__name__}); check the URL and the credentials") \
                from None
        except Exception as exc:
            # dicomweb-client's retry loop gives up with retrying.RetryError around the last
            # response it got
            last = getattr(getattr(exc, "last_attempt", None), "value", None)
            if isinstance(last, requests.Response):
                raise self.http_error(what, last) from None
            if isinstance(exc, (ValueError, KeyError)):
                raise RemoteError(f"{where}: {what}: the answer is not valid DICOMweb "
                                  f"({type(exc).__name__}: {str(exc)[:120]})") from None
            raise

    def http_error(self, what: str, response) -> RemoteError:
        where = public(self.url)
        code = response.status_code if response is not None else 0
        if code == 401:
            sent = self.options.user or self.options.token or urlsplit(self.url).username
            why = "the credentials were refused" if sent else "the server wants credentials"
            return RemoteError(f"{where}: {what}: 401 Unauthorized: {why} (--user/--password, "
                               "--token, or SEGBRIDGE_USER/SEGBRIDGE_PASSWORD/SEGBRIDGE_TOKEN)")
        if code == 403:
            return RemoteError(f"{where}: {what}: 403 Forbidden: these credentials may not do "
                               "this")
        if code == 404:
            return RemoteError(f"{where}: {what}: 404 Not Found")
        if code >= 500:
            return RemoteError(f"{where}: {what}: server error {code} (after "
                               f"{self.options.retries + 1} attempts)")
        return RemoteError(f"{where}: {what}: HTTP {code}")


def _boundary(content_type: str) -> bytes:
    import re

    m = re.search(r'boundary="?([^";]+)"?', content_type, re.IGNORECASE)
    if not m:
        raise ValueError("multipart answer without a boundary")
    return m.group(1).strip().encode()


def stream_parts(response, chunk: int = 1 << 16):
    """The bodies of a streamed multipart/related answer, each as soon as it is complete."""
    ctype = response.headers.get("Content-Type", "")
    if not ctype.lower().startswith("multipart/"):
        yield response.content
        return
    delim = b"--" + _boundary(ctype)
    buf = bytearray()
    start = -1  # where the current part's delimiter is in buf
    scan = 0
    for piece in response.iter_content(chunk):
        buf += piece
        while True:
            if start < 0:
                start = buf.find(delim)
                if start < 0:
                    break
                scan = start + len(delim)
            end = buf.find(b"\r\n" + delim, scan)
            if end < 0:
                scan = max(scan, len(buf) - len(delim) - 2)
                break
            _, sep, content = bytes(buf[start + len(delim):end]).partition(b"\r\n\r\n")
            if sep:
                yield content
            del buf[:end + 2]
            start, scan = 0, len(delim)
    # what is left is the closing delimiter ("--boundary--")


def multipart_parts(body: bytes, content_type: str) -> list[bytes]:
    """The bodies of a multipart/related answer (or the body itself when not multipart)."""
    if not content_type.lower().startswith("multipart/"):
        return [body]
    out = []
    for chunk in body.split(b"--" + _boundary(content_type))[1:]:
        if chunk.startswith(b"--"):
            break
        _, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        out.append(content[:-2] if content.endswith(b"\r\n") else content)
    return out
