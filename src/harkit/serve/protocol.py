"""uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request's headers and a
lingering close.

The application sees a request only once its headers are complete, so a client that trickles
header bytes, or connects and sends nothing, is invisible to the app's ``body_timeout``.
uvicorn's keep-alive timer covers only the idle time *between* requests and is cancelled by
the first byte of the next one. :func:`http_protocol` closes that gap: from the
moment a connection opens, or the first byte of a new request arrives, the complete headers
must be in within ``seconds``; otherwise the client gets ``408 Request Timeout`` and the
connection is closed. Requests whose headers are complete, and WebSocket connections once
upgraded, are not affected.

The same protocol closes *gracefully* after answering a request whose body it did not read
(413 for an oversized body, 408 for one that trickles). Closing a socket with unread bytes
makes the kernel send a reset, and a client still uploading then loses the answer it was
sent. Instead the server half-closes (the answer goes out with a FIN) and reads and discards
what the client still sends, until the client closes, ``linger_idle`` seconds pass without
bytes, or ``linger_max`` seconds in all; then it closes (the same idea as nginx's
``lingering_close``).

Example:
    >>> cls = http_protocol(10.0)
    >>> cls.__name__, cls.header_timeout
    ('HarkitH11Protocol', 10.0)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("uvicorn.error")


LINGER_IDLE = 2.0
LINGER_MAX = 10.0


class _LingeringTransport:
    """The connection's transport as the HTTP protocol sees it: ``close()`` after an answer to
    a request whose body is still arriving half-closes and lets the protocol discard the rest
    (see the module's docstring); everything else is the real transport's."""

    def __init__(self, transport: asyncio.Transport, protocol: Any) -> None:
        self._transport = transport
        self._protocol = protocol
        self.lingering = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        t = self._transport
        if self.lingering or t.is_closing():
            return
        if self._protocol.body_unread() and t.can_write_eof():
            self.lingering = True
            t.write_eof()  # after what is buffered: the answer, then FIN
            t.resume_reading()
            self._protocol.start_lingering()
        else:
            t.close()

    def close_now(self) -> None:
        """End the lingering: close the real transport."""
        self._transport.close()


def http_protocol(seconds: float, on_timeout: Callable[[], None] | None = None,
                  linger_idle: float = LINGER_IDLE, linger_max: float = LINGER_MAX
                  ) -> type[Any]:
    """A subclass of uvicorn's ``H11Protocol`` that answers 408 and closes a connection whose
    request headers take longer than ``seconds`` (``on_timeout`` is called each time, e.g. to
    count it), and closes a connection whose request body it did not read by lingering
    (``linger_idle``/``linger_max``, see the module's docstring); pass it as
    ``uvicorn.run(..., http=...)``."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    for name, value in (("header_timeout", seconds), ("linger_idle", linger_idle),
                        ("linger_max", linger_max)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    body = f"request headers not complete within {seconds:g} s (header_timeout)\n".encode()
    response = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
                + body)

    class HarkitH11Protocol(H11Protocol):
        header_timeout = seconds
        _header_timer: asyncio.TimerHandle | None = None
        _linger_timer: asyncio.TimerHandle | None = None
        _linger_until = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            self._proxy = _LingeringTransport(transport, self)
            super().connection_made(self._proxy)  # type: ignore[arg-type]
            self._arm()

        def body_unread(self) -> bool:
            """Whether the request's body is still arriving (and this is still HTTP: an
            upgraded connection has another protocol)."""
            return (self._proxy.get_protocol() is self
                    and self.conn.their_state is h11.SEND_BODY)

        def start_lingering(self) -> None:
            self._disarm()
            self._linger_until = self.loop.time() + linger_max
            self._linger_timer = self.loop.call_later(min(linger_idle, linger_max),
                                                      self._linger_expired)

        def _linger_expired(self) -> None:
            self._linger_timer = None
            self._proxy.close_now()

        def data_received(self, data: bytes) -> None:
            if self._proxy.lingering:  # the rest of a body already answered: discarded
                if self._linger_timer is not None:
                    self._linger_timer.cancel()
                    left = self._linger_until - self.loop.time()
                    self._linger_timer = self.loop.call_later(
                        max(0.0, min(linger_idle, left)), self._linger_expired)
                return
            super().data_received(data)
            # IDLE: the request's headers are not complete yet (h11 moves on once they are)
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                if self._header_timer is None:
                    self._arm()
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._linger_timer is not None:
                self._linger_timer.cancel()
                self._linger_timer = None
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

    return HarkitH11Protocol
