"""Keep the MP3 decoder's console chatter from the user, and nothing else.

libsndfile decodes MP3 through mpg123, which prints "Note: Illegal Audio-MPEG-Header …",
"Note: Trying to resync...", "Note: Skipped N bytes in input." and "[src/libmpg123/layer3.c:…]
error: …" on the C-level stderr when it probes a file that is not MP3 or meets a damaged frame:
a screenful beside our one-line error, or for a file that decodes fine after resyncing.
``filtered_stderr()`` points file descriptor 2 at an unlinked temporary file while libsndfile
opens or reads, then passes on everything except those lines, so whatever else was written
meanwhile (another thread's log line) still arrives. It is counted and locked: overlapping uses
on two threads restore the real stderr exactly once.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

# mpg123's own forms: "Note: …", "Warning: …" (a Xing header off by more than 1 %), and
# "[src/libmpg123/<file>:<function>():<line>] error: …"
MPG123_NOTE = re.compile(rb"^(Note: |Warning: |\[src/libmpg123/[^\]\n]*\] )[^\n]*\n?", re.M)

_lock = threading.Lock()
_depth = 0
_saved: int | None = None  # the real stderr, while it is redirected
_sink = None  # the temporary file it goes to meanwhile


def _stderr_fd() -> int | None:
    try:
        return sys.__stderr__.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (a windowed app)
        return None


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Within the block, the C-level stderr loses mpg123's "Note: …" lines and keeps the rest."""
    global _depth, _saved, _sink
    fd = _stderr_fd()
    if fd is None:
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                sink = tempfile.TemporaryFile()
                saved = os.dup(fd)
            except OSError:
                pass
            else:
                os.dup2(sink.fileno(), fd)
                _saved, _sink = saved, sink
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                os.dup2(_saved, fd)
                os.close(_saved)
                _sink.seek(0)
                kept = MPG123_NOTE.sub(b"", _sink.read())
                _sink.close()
                _saved = _sink = None
                if kept:
                    os.write(fd, kept)


def filtered_blocks(blocks: Iterator) -> Iterator:
    """``blocks`` with each block decoded under ``filtered_stderr`` (the lines come as the
    frames are decoded; between blocks stderr is the real one, so a progress bar still draws)."""
    while True:
        with filtered_stderr():
            block = next(blocks, None)
        if block is None:
            return
        yield block
