"""Waveform and loudness plots on a shared time axis (pyqtgraph).

The waveform draws from a min/max ``Envelope`` at about one bucket per pixel for whatever is in
view; the loudness traces use pyqtgraph's peak downsampling and clip-to-view, so an hour-long
file stays responsive. Silent windows (-inf) become gaps. The Level unit decides every line and
label of the loudness plot: LUFS shows the momentary/short-term loudness, the segments' LUFS and
the integrated line; dBFS the 400 ms RMS, the segments' RMS and the file's RMS; the model's
intensity only where its unit is the one shown. Clicking, dragging, zooming to a span and the
playhead come from ``navigation``.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from speechint_desktop.core.results import Analysis
from speechint_desktop.ui.envelope import Envelope
from speechint_desktop.ui.navigation import NavViewBox, Playhead, TimeAxis, zoom_range

pg.setConfigOptions(background="w", foreground="#3a3f44", antialias=False)

COLORS = {
    "wave": "#4a78b5",
    "momentary": "#9cc3e8",
    "short_term": "#1f5fa8",
    "rms": "#e08a2c",
    "integrated": "#1f5fa8",
    "measured": "#2f8f5b",
    "predicted": "#d0433f",
    "voice": "#8e44ad",
    "region": (255, 196, 0, 60),
    "speech": (70, 170, 110, 26),
}
BAND_Y = 1e3  # speech bands reach well past any level (dB) or amplitude the plots show


def _finite(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return np.where(np.isfinite(a), a, np.nan)


def _step(segments, values) -> tuple[np.ndarray, np.ndarray]:
    """x/y for horizontal bars (one per segment), NaN-separated so they are not joined."""
    xs, ys = [], []
    for seg, v in zip(segments, values, strict=False):
        if v is None or not math.isfinite(v):
            continue
        xs += [seg.start, seg.end, np.nan]
        ys += [v, v, np.nan]
    return np.array(xs, dtype=float), np.array(ys, dtype=float)


def contour_xy(contour) -> tuple[np.ndarray, np.ndarray]:
    """The voice-level contour's points with a break (NaN) wherever the speech stops."""
    if contour is None or not len(contour.times):
        return np.zeros(0), np.zeros(0)
    t = np.asarray(contour.times, dtype=float)
    v = np.asarray(contour.values, dtype=float)
    gaps = np.nonzero(np.diff(t) > 2.5 * contour.step_s)[0] + 1
    return np.insert(t, gaps, np.nan), np.insert(v, gaps, np.nan)


def _bands(brush) -> pg.BarGraphItem:
    """Light full-height bands (one per detected speech region) behind the curves."""
    item = pg.BarGraphItem(x0=[], x1=[], y0=-BAND_Y, y1=BAND_Y, pen=None, brush=brush)
    item.setZValue(-10)  # under the selection region
    return item


def target_unit(analysis: Analysis) -> str:
    """The unit of the model's intensity for ``analysis``: "LUFS" or "dBFS"."""
    return "LUFS" if (analysis.intensity_target or "").lower().startswith("lufs") else "dBFS"


class AnalysisPlots(QWidget):
    """Waveform above, loudness below; the x axes move together.

    ``clicked(t)``: a click on either plot; ``region_changed(a, b)``: the selection was dragged
    (on the plot or by its edges).
    """

    region_changed = Signal(float, float)
    clicked = Signal(float)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.envelope: Envelope | None = None
        self.analysis: Analysis | None = None
        self.unit = "dBFS"
        self.view = pg.GraphicsLayoutWidget()
        self.view.ci.setSpacing(4)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)

        self.wave_plot = self.view.addPlot(
            row=0, col=0, viewBox=NavViewBox(), axisItems={"bottom": TimeAxis()}
        )
        self.wave_plot.setLabel("left", "Amplitude")
        self.wave_plot.getAxis("left").enableAutoSIPrefix(False)
        self.wave_plot.setYRange(-1, 1, padding=0.02)
        self.wave_plot.setMouseEnabled(x=True, y=False)
        self.wave_plot.hideButtons()
        self.wave_plot.getAxis("bottom").setStyle(showValues=False)
        self.wave_curve = self.wave_plot.plot(pen=pg.mkPen(COLORS["wave"], width=1))
        self.wave_curve.setZValue(1)
        self.wave_plot.sigXRangeChanged.connect(self._refresh_wave)

        self.loud_plot = self.view.addPlot(
            row=1, col=0, viewBox=NavViewBox(), axisItems={"bottom": TimeAxis()}
        )
        self.loud_plot.setLabel("left", "Level", units=None)
        self.loud_plot.setLabel("bottom", "Time (m:ss)")
        self.loud_plot.setMouseEnabled(x=True, y=False)
        self.loud_plot.showGrid(x=False, y=True, alpha=0.2)  # an x grid costs half of a repaint
        self.loud_plot.hideButtons()
        self.loud_plot.setXLink(self.wave_plot)
        self.legend = self.loud_plot.addLegend(offset=(-10, 8), labelTextSize="8pt", colCount=3)
        for plot in (self.wave_plot, self.loud_plot):
            plot.getAxis("left").setWidth(58)  # aligned axes, and no relayout when tick labels change
        self.view.ci.layout.setRowStretchFactor(0, 2)
        self.view.ci.layout.setRowStretchFactor(1, 3)

        def curve(name, color, width=1.5, style=Qt.PenStyle.SolidLine):
            item = self.loud_plot.plot(
                name=name, pen=pg.mkPen(color, width=width, style=style), connect="finite"
            )
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
            return item

        self.momentary = curve("Momentary LUFS", COLORS["momentary"], 1.2)
        self.short_term = curve("Short-term LUFS", COLORS["short_term"], 2)
        self.rms = curve("RMS dBFS (400 ms)", COLORS["rms"], 1.5)
        self.seg_measured = curve("Segment measured", COLORS["measured"], 3)
        self.seg_predicted = curve("Model intensity", COLORS["predicted"], 3, Qt.PenStyle.DashLine)
        self.voice = curve("Voice level (model, 400 ms)", COLORS["voice"], 2)
        self._legend_entries: list[tuple[object, str]] = []

        # detected speech: the legend entry belongs to the loudness plot's bands; clicking it
        # hides both plots' bands
        speech_brush = pg.mkBrush(COLORS["speech"])
        self.speech_bands = [_bands(speech_brush) for _ in range(2)]
        for plot, bands in zip((self.wave_plot, self.loud_plot), self.speech_bands, strict=True):
            plot.addItem(bands, ignoreBounds=True)
        self.speech_bands[1].visibleChanged.connect(
            lambda: self.speech_bands[0].setVisible(self.speech_bands[1].isVisible())
        )
        self.speech: list[tuple[float, float]] = []

        self.measured_line = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen(COLORS["measured"], width=1, style=Qt.PenStyle.DotLine),
            label="",
            labelOpts={
                "position": 0.02,
                "color": COLORS["measured"],
                "anchors": [(0, 0), (0, 0)],
                "fill": (255, 255, 255, 210),
            },
        )
        self.predicted_line = pg.InfiniteLine(
            angle=0,
            pen=pg.mkPen(COLORS["predicted"], width=1.5, style=Qt.PenStyle.DashLine),
            label="",
            labelOpts={
                "position": 0.98,
                "color": COLORS["predicted"],
                "anchors": [(1, 1), (1, 1)],
                "fill": (255, 255, 255, 210),
            },
        )
        for line in (self.measured_line, self.predicted_line):
            line.setVisible(False)
            self.loud_plot.addItem(line, ignoreBounds=True)

        brush = pg.mkBrush(COLORS["region"])
        self.regions = [pg.LinearRegionItem(brush=brush, movable=True) for _ in range(2)]
        for plot, region in zip((self.wave_plot, self.loud_plot), self.regions, strict=True):
            region.setZValue(-5)  # under the curves, over the background
            region.setVisible(False)
            plot.addItem(region, ignoreBounds=True)
            region.sigRegionChanged.connect(self._sync_regions)
        self._syncing = False

        self.playhead = Playhead((self.wave_plot, self.loud_plot))
        self.placeholder = pg.TextItem("", color="#777", anchor=(0.5, 0.5))
        self._pending_duration: float | None = -1.0
        self.placeholder.setVisible(False)
        self.loud_plot.addItem(self.placeholder, ignoreBounds=True)
        for plot in (self.wave_plot, self.loud_plot):
            plot.vb.clicked.connect(self.clicked)
            plot.vb.dragged.connect(self._dragged)
        self._apply_unit()

    # --- public -------------------------------------------------------------------------------
    def clear(self) -> None:
        self.analysis = None
        self.envelope = None
        for item in (
            self.wave_curve,
            self.momentary,
            self.short_term,
            self.rms,
            self.seg_measured,
            self.seg_predicted,
            self.voice,
        ):
            item.setData([], [])
        self.measured_line.setVisible(False)
        self.predicted_line.setVisible(False)
        self.set_speech([])
        self.select_span(None)
        self.playhead.set_position(None)
        self._pending_duration = -1.0
        self.show_pending(None, "")

    def show_pending(self, duration: float | None, message: str) -> None:
        """A file without a result yet (queued, analysing, failed): its own time axis, if known,
        and ``message`` in the middle of the loudness plot — never the previous file's view."""
        if self.analysis is not None:
            return
        if duration != self._pending_duration:  # progress updates only change the text: cheap
            self._pending_duration = duration
            self._set_duration(duration or 1.0)
            self.loud_plot.setYRange(-60, 0, padding=0)
            self.placeholder.setPos((duration or 1.0) / 2, -30)
        if self.placeholder.toPlainText() != message:
            self.placeholder.setText(message)
        self.placeholder.setVisible(bool(message))

    def _set_duration(self, duration: float) -> None:
        duration = max(float(duration), 0.1)
        for plot in (self.wave_plot, self.loud_plot):
            plot.setLimits(xMin=-0.02 * duration, xMax=duration * 1.02)
        self.wave_plot.setXRange(0, duration, padding=0.01)

    def set_unit(self, unit: str) -> None:
        self.unit = "LUFS" if unit == "LUFS" else "dBFS"
        self._apply_unit()
        if self.analysis is not None:
            self.set_analysis(self.analysis, keep_view=True)

    def _apply_unit(self) -> None:
        """Show the lines of the chosen unit only, and list just those in the legend."""
        lufs = self.unit == "LUFS"
        self.momentary.setVisible(lufs)
        self.short_term.setVisible(lufs)
        self.rms.setVisible(not lufs)
        entries = (
            [(self.momentary, "Momentary LUFS"), (self.short_term, "Short-term LUFS")]
            if lufs
            else [(self.rms, "RMS dBFS (400 ms)")]
        )
        entries += [
            (self.seg_measured, f"Segment {'LUFS' if lufs else 'RMS dBFS'}"),
            (self.seg_predicted, f"Model intensity ({self.unit})"),
            (self.speech_bands[1], "Detected speech"),
        ]
        if entries != self._legend_entries:  # a new legend re-lays out: another repaint
            self.legend.clear()
            for item, name in entries:
                self.legend.addItem(item, name)
            self._legend_entries = entries
        self.loud_plot.setLabel("left", "Loudness (LUFS)" if lufs else "Level (dBFS)")

    def set_envelope(self, envelope: Envelope | None) -> None:
        self.envelope = envelope
        self._refresh_wave()

    def set_speech(self, spans) -> None:
        """Shade the detected speech regions ``[(start_s, end_s), ...]`` on both plots."""
        spans = [(float(a), float(b)) for a, b in spans]
        if spans == self.speech:
            return
        self.speech = spans
        x0 = [a for a, _ in spans]
        x1 = [b for _, b in spans]
        for bands in self.speech_bands:
            bands.setOpts(x0=x0, x1=x1)

    def set_analysis(self, analysis: Analysis, keep_view: bool = False) -> None:
        self.analysis = analysis
        self._pending_duration = -1.0
        self.placeholder.setVisible(False)
        self.set_speech(analysis.speech)
        trace = analysis.loudness.trace
        ys = []
        if trace is not None and len(trace.times):
            t = np.asarray(trace.times, dtype=float)
            for item, values in (
                (self.momentary, trace.momentary_lufs),
                (self.short_term, trace.short_term_lufs),
                (self.rms, trace.rms_dbfs),
            ):
                y = _finite(values)
                item.setData(t, y)
                if item.isVisible():
                    ys.append(y)
        else:
            for item in (self.momentary, self.short_term, self.rms):
                item.setData([], [])

        lufs = self.unit == "LUFS"
        segs = analysis.segments
        measured = [s.lufs if lufs else s.rms_dbfs for s in segs]
        # the model's intensity is in its own unit: drawn only when that is the unit shown
        same_unit = target_unit(analysis) == self.unit
        predicted = [s.predicted_intensity for s in segs] if same_unit else []
        self.seg_measured.setData(*_step(segs, measured))
        self.seg_predicted.setData(*_step(segs, predicted))
        # the voice-level contour is in dBFS: drawn with the other dBFS lines only
        voice_t, voice_v = contour_xy(analysis.voice_contour) if not lufs else ([], [])
        self.voice.setData(voice_t, voice_v)
        if len(voice_v):
            ys.append(voice_v)

        loud = analysis.loudness
        show_lufs = lufs and loud.integrated_lufs is not None
        value = loud.integrated_lufs if show_lufs else (None if lufs else loud.rms_dbfs)
        if value is not None and math.isfinite(value):
            self.measured_line.setValue(value)
            self.measured_line.label.setFormat(
                f"integrated {value:.1f} LUFS" if show_lufs else f"file RMS {value:.1f} dBFS"
            )
            self.measured_line.setVisible(True)
            self.measured_line.label.valueChanged()
            self.measured_line.label.updatePosition()
            ys.append(np.array([value]))
        else:
            self.measured_line.setVisible(False)
        file_predicted = analysis.predicted_intensity if same_unit else None
        if file_predicted is not None and math.isfinite(file_predicted):
            self.predicted_line.setValue(file_predicted)
            self.predicted_line.label.setFormat(f"model intensity {file_predicted:.1f} {self.unit}")
            self.predicted_line.setVisible(True)
            self.predicted_line.label.valueChanged()
            self.predicted_line.label.updatePosition()
            ys.append(np.array([file_predicted]))
        else:
            self.predicted_line.setVisible(False)
        ys += [np.array([v for v in measured + predicted if v is not None], dtype=float)]

        finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.zeros(0)
        if len(finite):
            lo = max(float(np.percentile(finite, 1)) - 6, -80.0)
            hi = min(float(finite.max()) + 14, 12.0)  # headroom for the legend
            self.loud_plot.setYRange(lo, max(hi, lo + 10), padding=0)
        if not keep_view:
            self._set_duration(analysis.duration_s)
        self._refresh_wave()

    def select_span(self, span: tuple[float, float] | None) -> None:
        for region in self.regions:
            region.setVisible(span is not None)
        if span is None:
            return
        self._syncing = True
        try:
            for region in self.regions:
                region.setRegion(span)
        finally:
            self._syncing = False
        lo, hi = self.wave_plot.viewRange()[0]
        if span[0] < lo or span[1] > hi:
            width = hi - lo
            centre = (span[0] + span[1]) / 2
            self.wave_plot.setXRange(centre - width / 2, centre + width / 2, padding=0)

    def selected_span(self) -> tuple[float, float] | None:
        region = self.regions[0]
        return tuple(region.getRegion()) if region.isVisible() else None

    def zoom_to(self, span: tuple[float, float]) -> None:
        """Select ``span`` and fill the view with it, with a little context either side."""
        self.select_span(span)
        duration = self.analysis.duration_s if self.analysis is not None else None
        lo, hi = zoom_range(span, duration)
        self.wave_plot.setXRange(lo, hi, padding=0)

    def view_range(self) -> tuple[float, float]:
        lo, hi = self.wave_plot.viewRange()[0]
        return float(lo), float(hi)

    def show_all(self) -> None:
        if self.analysis is not None:
            self.wave_plot.setXRange(0, max(self.analysis.duration_s, 0.1), padding=0.01)

    def set_playhead(self, t: float | None) -> None:
        """The playing position (None: hidden); the view follows it when it runs off the edge."""
        self.playhead.set_position(t)
        if t is None:
            return
        lo, hi = self.view_range()
        if not lo <= t <= hi:
            width = hi - lo
            self.wave_plot.setXRange(t - 0.1 * width, t + 0.9 * width, padding=0)

    # --- internals ---------------------------------------------------------------------------------
    def _dragged(self, a: float, b: float, finished: bool) -> None:
        if b - a <= 0:
            return
        self.select_span((a, b))
        if finished:
            self.region_changed.emit(a, b)

    def _sync_regions(self, changed) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            span = changed.getRegion()
            for region in self.regions:
                if region is not changed:
                    region.setRegion(span)
            self.region_changed.emit(float(span[0]), float(span[1]))
        finally:
            self._syncing = False

    def _refresh_wave(self, *args) -> None:
        env = self.envelope
        if env is None:
            self.wave_curve.setData([], [])
            return
        t0, t1 = self.wave_plot.viewRange()[0]
        pixels = max(int(self.wave_plot.vb.width()), 200)
        times, values = env.view(t0, t1, pixels)
        self.wave_curve.setData(times, values)
        peak = float(np.nanmax(np.abs(values))) if len(values) else 1.0
        self.wave_plot.setYRange(-max(peak, 0.05) * 1.05, max(peak, 0.05) * 1.05, padding=0)
