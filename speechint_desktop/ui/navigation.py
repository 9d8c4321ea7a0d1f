"""Finding your way in a long recording: clock time axes, click/drag on the plots, zoom to a span,
and the playhead.

Kept apart from ``plots`` (which draws the analysis) so the drawing and the moving-around change
independently. ``NavViewBox`` turns a left click into ``clicked(t)`` and a left drag into a
selection (``dragged(t0, t1, finished)``); a middle drag, Shift+drag or the wheel pans and zooms as
pyqtgraph does. ``TimeAxis`` labels ticks m:ss (h:mm:ss past an hour, tenths when zoomed in).
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

PLAYHEAD_COLOR = "#c0392b"
CONTEXT_SHARE = 0.25  # zoom to a span with this much of its length either side…
MIN_CONTEXT_S = 0.5  # …and at least this many seconds
MIN_VIEW_S = 1.5


def fmt_clock(t: float, spacing: float = 1.0) -> str:
    """``t`` seconds as m:ss (h:mm:ss past an hour); tenths/hundredths when ticks are that close."""
    if not math.isfinite(t):
        return ""
    decimals = 0 if spacing >= 1 else (1 if spacing >= 0.1 else 2)
    sign = "-" if t < 0 else ""
    t = abs(t)
    scale = 10**decimals
    total = round(t * scale) / scale
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s:0{3 + decimals if decimals else 2}.{decimals}f}"
    return f"{sign}{int(h)}:{int(m):02d}:{sec}" if h else f"{sign}{int(m)}:{sec}"


class TimeAxis(pg.AxisItem):
    """A bottom axis in clock time; ticks fall on 1/2/5/10/15/30 s, 1/2/5/10/15/30 min steps."""

    STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)

    def __init__(self, *args, **kwargs):
        super().__init__("bottom", *args, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802, N803 — pyqtgraph's API
        span = maxVal - minVal
        if span <= 0 or size <= 0:
            return super().tickSpacing(minVal, maxVal, size)
        wanted = span / max(size / 90.0, 1.0)  # a label every ~90 px
        major = next((s for s in self.STEPS if s >= wanted), self.STEPS[-1])
        minor = next((s for s in reversed(self.STEPS) if s <= major / 4), major / 5)
        return [(major, 0), (minor, 0)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 — pyqtgraph's API
        return [fmt_clock(v, spacing) for v in values]


class NavViewBox(pg.ViewBox):
    """A click reports its time; a left drag selects a span; everything else is pyqtgraph's."""

    clicked = Signal(float)
    dragged = Signal(float, float, bool)  # start, end, finished

    def mouseClickEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.clicked.emit(float(self.mapSceneToView(ev.scenePos()).x()))
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802
        plain = ev.modifiers() == Qt.KeyboardModifier.NoModifier
        if ev.button() != Qt.MouseButton.LeftButton or not plain or axis is not None:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        a = float(self.mapSceneToView(ev.buttonDownScenePos()).x())
        b = float(self.mapSceneToView(ev.scenePos()).x())
        self.dragged.emit(min(a, b), max(a, b), bool(ev.isFinish()))


def zoom_range(span: tuple[float, float], duration: float | None) -> tuple[float, float]:
    """The view for ``span``: the span with some context either side, inside the file."""
    a, b = float(span[0]), float(span[1])
    width = max(b - a, 0.0)
    pad = max(MIN_CONTEXT_S, CONTEXT_SHARE * width)
    lo, hi = a - pad, b + pad
    if hi - lo < MIN_VIEW_S:
        mid = (a + b) / 2
        lo, hi = mid - MIN_VIEW_S / 2, mid + MIN_VIEW_S / 2
    if duration:
        lo, hi = max(lo, 0.0), min(hi, float(duration))
    return lo, hi


class Playhead:
    """A vertical line at the playing position on every plot given."""

    def __init__(self, plots):
        pen = pg.mkPen(PLAYHEAD_COLOR, width=2)
        self.lines = []
        for plot in plots:
            line = pg.InfiniteLine(angle=90, pen=pen, movable=False)
            line.setZValue(20)
            line.setVisible(False)
            plot.addItem(line, ignoreBounds=True)
            self.lines.append(line)

    @property
    def position(self) -> float | None:
        line = self.lines[0]
        return float(line.value()) if line.isVisible() else None

    def set_position(self, t: float | None) -> None:
        for line in self.lines:
            if t is None:
                line.setVisible(False)
            else:
                line.setValue(float(t))
                line.setVisible(True)
