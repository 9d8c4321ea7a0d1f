"""``InOrder``: a function applied to a stream of blocks on one worker thread, in order.

A recording's preparing pass feeds each block to several independent consumers (speech
detection, the true-peak filter, the loudness meter, the resampler). numpy and onnxruntime
release the GIL inside their loops, so a consumer on a thread of its own runs beside the others
on a second core; ``depth`` bounds how far the reader gets ahead of it (memory stays a few
blocks whatever the recording's length).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


class InOrder:
    """Calls ``fn(block)`` for each submitted block, in order, on one worker thread; at most
    ``depth`` blocks wait. ``wait()`` returns when all are done and raises the first error any of
    them raised; ``close()`` drops what has not started (after an error or a cancel)."""

    def __init__(self, fn, name: str, depth: int = 4):
        self._fn = fn
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"speechint-{name}")
        self._pending: list = []
        self._depth = depth

    def submit(self, block) -> None:
        self._pending.append(self._pool.submit(self._fn, block))
        while len(self._pending) > self._depth:
            self._pending.pop(0).result()

    def wait(self) -> None:
        try:
            while self._pending:
                self._pending.pop(0).result()
        finally:
            self._pool.shutdown(wait=True)

    def close(self) -> None:
        for f in self._pending:
            f.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)
