"""Service metrics in the Prometheus text exposition format (version 0.0.4).

Written by hand rather than with ``prometheus_client``: the service needs a handful of
counters, one gauge and one histogram, which is less code than wiring up a registry, and
``harkit[serve]`` stays free of another dependency. Thread-safe: updates come from the event
loop and from the prediction threads.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

#: Upper bounds (seconds) of the request latency histogram buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(v: str) -> str:
    """A label value escaped as the text format requires."""
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    return repr(float(v)) if v != int(v) else str(int(v))


class Metrics:
    """Counters for HTTP requests and WebSocket streams, rendered by :meth:`render`.

    Example:
        >>> m = Metrics()
        >>> m.observe_request("POST", "/predict", 200, 0.003)
        >>> 'harkit_http_requests_total{method="POST",route="/predict",status="200"} 1' in m.render()
        True
    """

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._errors: dict[tuple[str, str], int] = defaultdict(int)
        # per route: counts per bucket (the last one is +Inf), sum of seconds
        self._hist: dict[str, list[int]] = {}
        self._hist_sum: dict[str, float] = defaultdict(float)
        self._windows: dict[str, int] = defaultdict(int)
        self.ws_active = 0
        self.ws_connections = 0
        self.ws_messages = 0
        self.ws_errors = 0
        self.events_pushed = 0
        self._faults: dict[str, int] = defaultdict(int)
        self._repairs: dict[str, int] = defaultdict(int)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP response and its latency."""
        with self._lock:
            self._requests[(method, route, str(status))] += 1
            if status >= 400:
                kind = "client" if status < 500 else "server"
                self._errors[(route, kind)] += 1
            counts = self._hist.setdefault(route, [0] * (len(self.buckets) + 1))
            counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self._hist_sum[route] += seconds

    def add_windows(self, source: str, n: int) -> None:
        """Count ``n`` windows predicted for ``source`` (``predict`` or ``stream``)."""
        with self._lock:
            self._windows[source] += n

    def ws_opened(self) -> None:
        with self._lock:
            self.ws_active += 1
            self.ws_connections += 1

    def ws_closed(self) -> None:
        with self._lock:
            self.ws_active -= 1

    def ws_message(self, ok: bool) -> None:
        """Count one message received on a stream; ``ok=False`` when it was refused."""
        with self._lock:
            self.ws_messages += 1
            if not ok:
                self.ws_errors += 1

    def events(self, n: int) -> None:
        """Count ``n`` stream events sent to clients."""
        with self._lock:
            self.events_pushed += n

    def fault(self, kind: str) -> None:
        """Count one client fault the server survived (``body_timeout``, ``ws_idle_timeout``,
        ``ws_send_timeout``, ``disconnect``, ...)."""
        with self._lock:
            self._faults[kind] += 1

    def repairs(self, stats: dict[str, int]) -> None:
        """Add a stream's hostile-input counters (see ``StreamingPredictor.stats``)."""
        with self._lock:
            for k, v in stats.items():
                if v:
                    self._repairs[k] += v

    @property
    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    def render(self) -> str:
        """All metrics in the Prometheus text format."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        with self._lock:
            family("harkit_http_requests_total", "counter", "HTTP responses by route and status.")
            for (method, route, status), n in sorted(self._requests.items()):
                out.append(f'harkit_http_requests_total{{method="{_label(method)}",'
                           f'route="{_label(route)}",status="{status}"}} {n}')
            family("harkit_http_errors_total", "counter",
                   "HTTP responses with an error status (client: 4xx, server: 5xx).")
            for (route, kind), n in sorted(self._errors.items()):
                out.append(f'harkit_http_errors_total{{route="{_label(route)}",kind="{kind}"}} '
                           f"{n}")
            family("harkit_http_request_duration_seconds", "histogram",
                   "HTTP request latency, from the first byte read to the response.")
            for route, counts in sorted(self._hist.items()):
                r = _label(route)
                total = 0
                for le, c in zip([*map(_num, self.buckets), "+Inf"], counts, strict=True):
                    total += c
                    out.append(f'harkit_http_request_duration_seconds_bucket{{route="{r}",'
                               f'le="{le}"}} {total}')
                out.append(f'harkit_http_request_duration_seconds_sum{{route="{r}"}} '
                           f"{self._hist_sum[route]!r}")
                out.append(f'harkit_http_request_duration_seconds_count{{route="{r}"}} {total}')
            family("harkit_windows_predicted_total", "counter", "Windows predicted, by source.")
            for source, n in sorted(self._windows.items()):
                out.append(f'harkit_windows_predicted_total{{source="{_label(source)}"}} {n}')
            family("harkit_websocket_clients", "gauge", "WebSocket stream clients connected now.")
            out.append(f"harkit_websocket_clients {self.ws_active}")
            family("harkit_websocket_connections_total", "counter",
                   "WebSocket stream connections accepted.")
            out.append(f"harkit_websocket_connections_total {self.ws_connections}")
            family("harkit_websocket_messages_total", "counter",
                   "Messages received on WebSocket streams.")
            out.append(f"harkit_websocket_messages_total {self.ws_messages}")
            family("harkit_websocket_errors_total", "counter",
                   "WebSocket messages refused (answered with an error message).")
            out.append(f"harkit_websocket_errors_total {self.ws_errors}")
            family("harkit_stream_events_total", "counter", "Stream events pushed to clients.")
            out.append(f"harkit_stream_events_total {self.events_pushed}")
            family("harkit_client_faults_total", "counter",
                   "Client faults survived (timeouts, disconnects), by kind.")
            for kind, n in sorted(self._faults.items()):
                out.append(f'harkit_client_faults_total{{kind="{_label(kind)}"}} {n}')
            family("harkit_stream_repairs_total", "counter",
                   "Stream samples/windows dropped, filled or reset by the hostile-stream "
                   "policies, by kind.")
            for kind, n in sorted(self._repairs.items()):
                out.append(f'harkit_stream_repairs_total{{kind="{_label(kind)}"}} {n}')
        return "\n".join(out) + "\n"


__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Metrics"]
