"""Raw-socket helpers for probing a running harkit service the way a misbehaving client would.

A WebSocket upgrade without a client library (so a test can send frames and then never read,
or vanish mid-frame), hand-made client frames, and waiting for a server's ``/health``. The
hostile-client tests and the soak, fuzz and load benchmarks share them.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import time
import urllib.request
from pathlib import Path

UPGRADE = ("GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def ws_text_frame(text: str) -> bytes:
    """One WebSocket text frame as a client must send it: final, masked (with a zero key, so
    the payload stays readable), with the 7-, 16- or 64-bit length form its size needs."""
    data = text.encode()
    n = len(data)
    if n < 126:
        size = bytes([0x80 | n])
    elif n < 65536:
        size = bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        size = bytes([0x80 | 127]) + struct.pack(">Q", n)
    return b"\x81" + size + b"\x00\x00\x00\x00" + data


def raw_ws_connect(port: int, path: str = "/stream", rcvbuf: int | None = None,
                   host: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    """A socket past the WebSocket upgrade of ``path`` (``rcvbuf``: a small receive buffer,
    for a client that sends and never reads).

    Raises:
        ConnectionError: the server answered the upgrade with anything but 101.
    """
    s = socket.create_connection((host, port), timeout=timeout)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.sendall(UPGRADE.format(path=path).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        s.close()
        raise ConnectionError(f"upgrade of {path} refused: {head[:60]!r}")
    return s


def has_answered(sock: socket.socket, wait: float) -> bool:
    """True once the server has sent something on ``sock`` (looked at, not consumed), waiting
    at most ``wait`` seconds; the socket's own timeout is restored afterwards. A client that
    keeps sending asks this between pieces, so it stops as soon as the server replied."""
    before = sock.gettimeout()
    sock.settimeout(wait)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except TimeoutError:
        return False
    finally:
        sock.settimeout(before)


def wait_healthy(port: int, proc: subprocess.Popen[bytes] | None = None,
                 log: Path | None = None, timeout: float = 60.0,
                 host: str = "127.0.0.1") -> None:
    """Wait until ``GET /health`` answers.

    Raises:
        RuntimeError: ``proc`` (the server's process) exited first (with the end of ``log``),
            or nothing answered within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=1):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log is not None else ""
                raise RuntimeError(f"the server exited ({proc.returncode}): {tail}") from None
            time.sleep(0.2)
    raise RuntimeError(f"no answer from http://{host}:{port}/health within {timeout:.0f} s")
