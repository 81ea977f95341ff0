"""harkit.serve.probe: the raw WebSocket frames and upgrade the hostile-client tests rely on."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from harkit.serve.probe import has_answered, raw_ws_connect, wait_healthy, ws_text_frame


@pytest.mark.parametrize("n, header", [(0, b"\x81\x80"), (125, b"\x81\xfd"),
                                       (126, b"\x81\xfe" + struct.pack(">H", 126)),
                                       (65535, b"\x81\xfe" + struct.pack(">H", 65535)),
                                       (65536, b"\x81\xff" + struct.pack(">Q", 65536))])
def test_text_frame_lengths(n: int, header: bytes) -> None:
    frame = ws_text_frame("a" * n)
    assert frame[: len(header)] == header  # final text frame, masked, the length's form
    assert frame[len(header) : len(header) + 4] == b"\x00\x00\x00\x00"  # the zero mask key
    assert frame[len(header) + 4 :] == b"a" * n and len(frame) == len(header) + 4 + n


def _one_reply(reply: bytes) -> int:
    """A listening socket that answers its first connection with ``reply``; its port."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(reply)
        srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(srv.getsockname()[1])


def test_upgrade_refused_is_a_connection_error() -> None:
    port = _one_reply(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    with pytest.raises(ConnectionError, match="404"):
        raw_ws_connect(port, "/nope")
    port = _one_reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    raw_ws_connect(port).close()


def test_wait_healthy_gives_up_with_a_message() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match="no answer"):
        wait_healthy(port, timeout=0.5)


def test_has_answered_peeks_without_consuming_and_keeps_the_timeout() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = int(srv.getsockname()[1])
    with socket.create_connection(("127.0.0.1", port), timeout=7) as c, srv:
        conn, _ = srv.accept()
        with conn:
            assert not has_answered(c, 0.05)  # nothing sent yet
            assert c.gettimeout() == 7
            conn.sendall(b"HTTP/1.1 408")
            assert has_answered(c, 2.0) and c.gettimeout() == 7
            assert c.recv(12) == b"HTTP/1.1 408"  # the peeked bytes are still there
