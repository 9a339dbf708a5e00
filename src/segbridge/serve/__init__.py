"""``segbridge serve``: the HTTP client of the library (FastAPI on uvicorn).

The HTTP layer owns only what is HTTP: bearer tokens, upload limits and streaming, status
codes, the bounded work queue, timeouts, metrics and request logs. Everything a request
computes runs in worker processes (``jobs.py``) through the same library functions the CLI
calls: ``segbridge.web.publish`` (mask -> SEG -> STOW -> read back -> verify),
``segbridge.validate``, ``segbridge.measure``. The event loop never decodes pixels.

Importing this package imports neither FastAPI nor uvicorn (the CLI's start-up time is
measured): ``config`` is plain Python, ``app`` and ``run`` import the web stack.
"""

from __future__ import annotations

from .config import ServeConfig

__all__ = ["ServeConfig", "run"]


def run(config: ServeConfig) -> None:
    """Serve until SIGINT / SIGTERM (uvicorn handles both: in-flight requests finish)."""
    import uvicorn

    from .app import create_app

    uvicorn.run(create_app(config), host=config.host, port=config.port, access_log=False,
                log_level="warning", timeout_keep_alive=5, server_header=False)
