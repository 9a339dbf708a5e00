"""Prometheus text exposition (format 0.0.4) of a few counters and one histogram.

Kept in the event loop's process (one uvicorn process per service), so no multiprocess
collector is needed; prometheus_client would add a dependency for ~60 lines.
"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def _labels(d: dict) -> str:
    def esc(v) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in d.items()) + "}" if d else ""


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple, int] = defaultdict(int)  # (route, method, status)
        self.latency: dict[str, list[int]] = {}  # route -> bucket counts (+Inf last)
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.conversions: dict[tuple, int] = defaultdict(int)  # (endpoint, outcome)
        self.failures: dict[str, int] = defaultdict(int)  # error kind
        self.bytes_in = 0
        self.bytes_out = 0
        self.inflight = 0
        self.capacity = 0

    def request(self, route: str, method: str, status: int, seconds: float, bytes_in: int,
                bytes_out: int) -> None:
        with self._lock:
            self.requests[(route, method, str(status))] += 1
            counts = self.latency.setdefault(route, [0] * (len(BUCKETS) + 1))
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    counts[i] += 1
            counts[-1] += 1
            self.latency_sum[route] += seconds
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out

    def conversion(self, endpoint: str, outcome: str) -> None:
        with self._lock:
            self.conversions[(endpoint, outcome)] += 1

    def failure(self, kind: str) -> None:
        with self._lock:
            self.failures[kind] += 1

    def render(self) -> str:
        out = []

        def family(name: str, kind: str, help_: str) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")

        with self._lock:
            family("segbridge_http_requests_total", "counter", "HTTP requests by route, "
                   "method and status.")
            for (route, method, status), n in sorted(self.requests.items()):
                out.append(f"segbridge_http_requests_total"
                           f"{_labels({'route': route, 'method': method, 'status': status})} {n}")
            family("segbridge_http_request_duration_seconds", "histogram",
                   "Time from the request's arrival to the end of its answer.")
            for route, counts in sorted(self.latency.items()):
                for b, n in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
                    out.append(f"segbridge_http_request_duration_seconds_bucket"
                               f"{_labels({'route': route, 'le': b})} {n}")
                out.append(f"segbridge_http_request_duration_seconds_sum"
                           f"{_labels({'route': route})} {self.latency_sum[route]:.6f}")
                out.append(f"segbridge_http_request_duration_seconds_count"
                           f"{_labels({'route': route})} {counts[-1]}")
            family("segbridge_conversions_total", "counter",
                   "Conversions by endpoint and outcome (ok / error kind).")
            for (endpoint, outcome), n in sorted(self.conversions.items()):
                out.append(f"segbridge_conversions_total"
                           f"{_labels({'endpoint': endpoint, 'outcome': outcome})} {n}")
            family("segbridge_failures_total", "counter", "Error answers by kind.")
            for kind, n in sorted(self.failures.items()):
                out.append(f"segbridge_failures_total{_labels({'kind': kind})} {n}")
            family("segbridge_received_bytes_total", "counter", "Request body bytes received.")
            out.append(f"segbridge_received_bytes_total {self.bytes_in}")
            family("segbridge_sent_bytes_total", "counter", "Response body bytes sent.")
            out.append(f"segbridge_sent_bytes_total {self.bytes_out}")
            family("segbridge_work_inflight", "gauge", "Requests holding a work slot "
                   "(receiving, queued or running).")
            out.append(f"segbridge_work_inflight {self.inflight}")
            family("segbridge_work_capacity", "gauge", "Work slots (--workers + --queue).")
            out.append(f"segbridge_work_capacity {self.capacity}")
        return "\n".join(out) + "\n"
