"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request's headers.

The application sees a request only once its headers are complete, so a client that trickles
header bytes, or connects and sends nothing, is invisible to the app's ``body_timeout``.
uvicorn's keep-alive timer covers only the idle time *between* requests and is cancelled by
the first byte of the next one. :func:`header_timeout_protocol` closes that gap: from the
moment a connection opens, or the first byte of a new request arrives, the complete headers
must be in within ``seconds``; otherwise the client gets ``408 Request Timeout`` and the
connection is closed. Requests whose headers are complete, and WebSocket connections once
upgraded, are not affected.

Example:
    >>> cls = header_timeout_protocol(10.0)
    >>> cls.__name__, cls.header_timeout
    ('HeaderTimeoutH11Protocol', 10.0)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("uvicorn.error")


def header_timeout_protocol(seconds: float, on_timeout: Callable[[], None] | None = None
                            ) -> type[Any]:
    """A subclass of uvicorn's ``H11Protocol`` that answers 408 and closes a connection whose
    request headers take longer than ``seconds`` (``on_timeout`` is called each time, e.g. to
    count it); pass it as ``uvicorn.run(..., http=...)``."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    if not seconds > 0:
        raise ValueError(f"header_timeout must be positive, got {seconds!r}")
    body = f"request headers not complete within {seconds:g} s (header_timeout)\n".encode()
    response = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
                + body)

    class HeaderTimeoutH11Protocol(H11Protocol):
        header_timeout = seconds
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            # IDLE: the request's headers are not complete yet (h11 moves on once they are)
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                if self._header_timer is None:
                    self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(seconds, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.our_state is not h11.IDLE:  # a response is still going out
                return
            log.info("%s: request headers not complete within %g s: 408",
                     self.client, seconds)
            if on_timeout is not None:
                on_timeout()
            self.transport.write(response)
            self.transport.close()

    return HeaderTimeoutH11Protocol
