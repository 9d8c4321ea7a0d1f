"""Waveform and loudness plots on a shared time axis (pyqtgraph).

The waveform draws from a min/max ``Envelope`` at about one bucket per pixel for whatever is in
view; the loudness traces use pyqtgraph's peak downsampling and clip-to-view, so an hour-long
file stays responsive. Silent windows (-inf) become gaps.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from speechint_desktop.core.results import Analysis
from speechint_desktop.ui.envelope import Envelope

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


class AnalysisPlots(QWidget):
    """Waveform above, loudness below; the x axes move together."""

    region_changed = Signal(float, float)

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

        self.wave_plot = self.view.addPlot(row=0, col=0)
        self.wave_plot.setLabel("left", "Amplitude")
        self.wave_plot.getAxis("left").enableAutoSIPrefix(False)
        self.wave_plot.setYRange(-1, 1, padding=0.02)
        self.wave_plot.setMouseEnabled(x=True, y=False)
        self.wave_plot.hideButtons()
        self.wave_plot.getAxis("bottom").setStyle(showValues=False)
        self.wave_curve = self.wave_plot.plot(pen=pg.mkPen(COLORS["wave"], width=1))
        self.wave_curve.setZValue(1)
        self.wave_plot.sigXRangeChanged.connect(self._refresh_wave)

        self.loud_plot = self.view.addPlot(row=1, col=0)
        self.loud_plot.setLabel("left", "Level", units=None)
        self.loud_plot.setLabel("bottom", "Time (s)")
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
        self.seg_predicted = curve("Predicted intensity", COLORS["predicted"], 3, Qt.PenStyle.DashLine)
        self.voice = curve("Voice level (head, 400 ms)", COLORS["voice"], 2)

        # detected speech: the legend entry belongs to the loudness plot's bands; clicking it
        # hides both plots' bands
        speech_brush = pg.mkBrush(COLORS["speech"])
        self.speech_bands = [_bands(speech_brush) for _ in range(2)]
        for plot, bands in zip((self.wave_plot, self.loud_plot), self.speech_bands, strict=True):
            plot.addItem(bands, ignoreBounds=True)
        self.speech_bands[1].visibleChanged.connect(
            lambda: self.speech_bands[0].setVisible(self.speech_bands[1].isVisible())
        )
        self.legend.addItem(self.speech_bands[1], "Detected speech")
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

    def set_unit(self, unit: str) -> None:
        self.unit = unit
        if self.analysis is not None:
            self.set_analysis(self.analysis, keep_view=True)

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
                ys.append(y)
        else:
            for item in (self.momentary, self.short_term, self.rms):
                item.setData([], [])

        target_lufs = (analysis.intensity_target or "").lower().startswith("lufs")
        segs = analysis.segments
        measured = [s.lufs if target_lufs else s.rms_dbfs for s in segs]
        predicted = [s.predicted_intensity for s in segs]
        self.seg_measured.setData(*_step(segs, measured))
        self.seg_predicted.setData(*_step(segs, predicted))
        voice_t, voice_v = contour_xy(analysis.voice_contour)
        self.voice.setData(voice_t, voice_v)
        ys.append(voice_v)
        label = self.legend.getLabel(self.seg_measured)
        text = f"Segment {'LUFS' if target_lufs else 'RMS dBFS'}"
        if label.text != text:  # a new text re-lays out the legend: another repaint
            label.setText(text)

        loud = analysis.loudness
        show_lufs = self.unit == "LUFS" and loud.integrated_lufs is not None
        value = loud.integrated_lufs if show_lufs else loud.rms_dbfs
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
        if analysis.predicted_intensity is not None and math.isfinite(analysis.predicted_intensity):
            unit = "LUFS" if target_lufs else "dBFS"
            self.predicted_line.setValue(analysis.predicted_intensity)
            self.predicted_line.label.setFormat(f"predicted {analysis.predicted_intensity:.1f} {unit}")
            self.predicted_line.setVisible(True)
            self.predicted_line.label.valueChanged()
            self.predicted_line.label.updatePosition()
            ys.append(np.array([analysis.predicted_intensity]))
        else:
            self.predicted_line.setVisible(False)
        ys += [np.array([v for v in measured + predicted if v is not None], dtype=float)]

        self.loud_plot.setLabel("left", "Level (LUFS / dBFS)")
        finite = np.concatenate([y[np.isfinite(y)] for y in ys]) if ys else np.zeros(0)
        if len(finite):
            lo = max(float(np.percentile(finite, 1)) - 6, -80.0)
            hi = min(float(finite.max()) + 14, 12.0)  # headroom for the legend
            self.loud_plot.setYRange(lo, max(hi, lo + 10), padding=0)
        if not keep_view:
            duration = max(float(analysis.duration_s), 0.1)
            self.wave_plot.setLimits(xMin=-0.02 * duration, xMax=duration * 1.02)
            self.loud_plot.setLimits(xMin=-0.02 * duration, xMax=duration * 1.02)
            self.wave_plot.setXRange(0, duration, padding=0.01)
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

    # --- internals ---------------------------------------------------------------------------------
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
