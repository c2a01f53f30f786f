"""The pipe between the pool's master and one generation: one JSON object per line.

Both ends read without blocking (``receive``) from loops that ``select`` on ``fileno()``;
a message is small (a few hundred bytes: counts per queue list, worker pids), so a write
to a Unix socket never waits in practice, and a peer that is gone shows as ``closed``
(end of file, or a write refused) rather than an exception.

Messages, generation to master: ``{"ready": true}`` (code, checks and counts loaded),
``{"failed": "one line"}`` (it will not become ready), ``{"held": {list: n}, "pids": [...],
"scheduler": bool}`` (its workers, sent when they change; ``"retired": true`` answers a
``retire``), ``{"beat": state or null}`` (its loop came round: the health file's state,
null when unchanged). Master to generation: ``{"others": {list: n}, "scheduler": bool}``
(the slots older generations still hold, and whether their scheduler still runs; the
first one is the go-ahead), ``{"retire":
true}``, ``{"deploy": text or null}`` (a reload that waits, for the published state).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from typing import Any


class Link:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self.buffer = b""
        self.closed = False

    @classmethod
    def pair(cls) -> tuple[Link, socket.socket]:
        """The master's end, and the generation's socket (to pass on to it, inheritable)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        theirs.set_inheritable(True)
        return cls(ours), theirs

    @classmethod
    def from_fd(cls, fd: int) -> Link:
        sock = socket.socket(fileno=fd)
        os.set_inheritable(fd, False)
        return cls(sock)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        try:
            self.sock.setblocking(True)
            self.sock.sendall(data)
        except OSError:
            self.closed = True
        finally:
            with contextlib.suppress(OSError):
                self.sock.setblocking(False)

    def receive(self) -> list[dict[str, Any]]:
        """Every complete message waiting, oldest first; sets ``closed`` at end of file."""
        while not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True
                break
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        messages = []
        for line in lines:
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict):
                    messages.append(message)
        return messages

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()
