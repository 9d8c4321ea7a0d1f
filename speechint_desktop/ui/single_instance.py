"""One window per user and data folder: a second launch hands its files to the running app.

Two windows would share one session folder, each restoring and rewriting the same queue, and
analyse side by side on the same cores. "Open with SpeechInt" from a file manager, or a second
double-click, should add to the queue already open and bring its window to the front, as a
media player does. The first window listens on a local socket (``QLocalServer``) named after
the user and the data folder; a second launch sends it its paths as one JSON line, waits for
"ok", and exits. Nothing answering means no window runs (a stale socket of a crashed one is
removed); a window that does not answer in time is treated the same, so a launch never hangs.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

WAIT_MS = 2000  # a running window answers in milliseconds; a hung one must not hold a launch up


def server_name(home: str | os.PathLike) -> str:
    """Per user and per data folder (tests and portable installs run their own windows)."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name (a container without /etc/passwd entry)
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    digest = hashlib.sha1(str(Path(home).resolve()).encode()).hexdigest()[:12]
    return f"speechint-{user}-{digest}"


def hand_over(name: str, paths: list[str], wait_ms: int = WAIT_MS) -> bool:
    """Send ``paths`` (made absolute: the other window has its own working folder) to a running
    window; True once it said it took them."""
    sock = QLocalSocket()
    sock.connectToServer(name)
    if not sock.waitForConnected(wait_ms):
        return False
    try:
        sock.write(json.dumps([os.path.abspath(p) for p in paths]).encode() + b"\n")
        if not sock.waitForBytesWritten(wait_ms):
            return False
        answer = b""
        while not answer.endswith(b"\n") and sock.waitForReadyRead(wait_ms):
            answer += bytes(sock.readAll().data())
        return answer.strip() == b"ok"
    finally:
        sock.abort()


class InstanceServer(QObject):
    """Listens for later launches; ``paths_received(list)`` carries what each one was given
    (an empty list: bring the window to the front)."""

    paths_received = Signal(list)

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.name = name
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        """Start listening; a socket file left by a crashed window is removed first."""
        if self.server.listen(self.name):
            return True
        QLocalServer.removeServer(self.name)
        return self.server.listen(self.name)

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            sock = self.server.nextPendingConnection()
            buf = bytearray()

            def read(sock=sock, buf=buf) -> None:
                buf += bytes(sock.readAll().data())
                if not buf.endswith(b"\n"):
                    return
                try:
                    paths = [str(p) for p in json.loads(bytes(buf))]
                except (ValueError, TypeError):
                    sock.abort()  # not one of ours
                    return
                sock.write(b"ok\n")
                sock.flush()
                sock.disconnectFromServer()
                self.paths_received.emit(paths)

            sock.readyRead.connect(read)
            sock.disconnected.connect(sock.deleteLater)
