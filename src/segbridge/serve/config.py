"""What ``segbridge serve`` is started with, checked before anything listens."""

from __future__ import annotations

import ipaddress
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InvalidInputError
from ..web.client import WebOptions, public, split_series_url

MIN_TOKEN = 16  # characters; shorter bearer tokens are guessable


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_tokens(path: str | os.PathLike) -> tuple[str, ...]:
    """One token per line; blank lines and ``#`` comments skipped. Tokens are never echoed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"--token-file {p}: cannot be read "
                                f"({getattr(exc, 'strerror', None) or type(exc).__name__})") \
            from None
    tokens = []
    for n, line in enumerate(text.splitlines(), 1):
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        if len(t) < MIN_TOKEN or any(c.isspace() or not c.isprintable() for c in t) or \
                not t.isascii():
            raise InvalidInputError(f"--token-file {p}: line {n}: a token must be at least "
                                    f"{MIN_TOKEN} printable ASCII characters without spaces")
        tokens.append(t)
    if not tokens:
        raise InvalidInputError(f"--token-file {p}: holds no token")
    return tuple(tokens)


@dataclass(frozen=True)
class ServeConfig:
    """The service's settings; ``tokens`` and ``web`` (PACS credentials) are never printed."""

    pacs: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    tokens: tuple[str, ...] = field(default=(), repr=False)
    max_upload: int = 2 << 30
    timeout: float = 300.0
    queue: int = 8
    tmp_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "segbridge-serve")
    web: WebOptions = field(default_factory=WebOptions)

    @classmethod
    def build(cls, pacs: str, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 2,
              token_file: str | os.PathLike | None = None, max_upload: int = 2 << 30,
              timeout: float = 300.0, queue: int = 8,
              tmp_dir: str | os.PathLike | None = None) -> ServeConfig:
        """Check the options; PACS credentials come from SEGBRIDGE_USER / _PASSWORD / _TOKEN /
        _CA_BUNDLE / _TIMEOUT, as for ``segbridge push``."""
        from ..web.client import Endpoint

        root, study, series = split_series_url(pacs)
        if study or series:
            raise InvalidInputError(f"--pacs {public(pacs)}: give the DICOMweb root "
                                    "(http://host/dicom-web), not a study or series URL")
        web = WebOptions.from_env()
        Endpoint(root, web)  # URL and credentials checked now, not on the first request
        tokens = read_tokens(token_file) if token_file is not None else ()
        if not tokens and not is_loopback(host):
            raise InvalidInputError(f"--host {host} is reachable from other machines: give "
                                    "--token-file (without tokens the service listens on "
                                    "loopback only)")
        if not 0 < port < 65536:
            raise InvalidInputError(f"--port must be 1..65535, got {port}")
        for what, v in (("--workers", workers), ("--max-upload", max_upload)):
            if v < 1:
                raise InvalidInputError(f"{what} must be at least 1, got {v}")
        if queue < 0:
            raise InvalidInputError(f"--queue must be 0 or more, got {queue}")
        if not timeout > 0:
            raise InvalidInputError(f"--timeout must be more than 0 seconds, got {timeout:g}")
        tmp = Path(tmp_dir) if tmp_dir is not None else cls.__dataclass_fields__[
            "tmp_dir"].default_factory()
        try:
            tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise InvalidInputError(f"--tmp-dir {tmp}: cannot be created ({exc.strerror})") \
                from None
        if not os.access(tmp, os.W_OK | os.X_OK):
            raise InvalidInputError(f"--tmp-dir {tmp}: not writable")
        return cls(pacs=root, host=host, port=port, workers=workers, tokens=tokens,
                   max_upload=max_upload, timeout=timeout, queue=queue, tmp_dir=tmp, web=web)

    @property
    def capacity(self) -> int:
        """Requests doing work at once: running in a worker, or waiting for one."""
        return self.workers + self.queue
