"""Moving around the shown file: a segment or word picked in the transcript zooms the plots to it,
a click on the plots selects what was said there and sets the play position, a drag selects a
span, Space plays or stops, and the playhead follows playback.

The plots draw; the transcript lists; the player plays. This object only connects them, so none of
them knows the others and the main window stays a place that builds widgets.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut

PLAYHEAD_MS = 40  # 25 updates a second: smooth enough, cheap for the GUI thread


class Navigator(QObject):
    """Connects ``plots`` (AnalysisPlots), ``transcript`` (TranscriptPane) and ``player`` (Player).

    ``current`` gives the shown row (``results_table.Row``) or None; ``enabled`` says whether the
    keyboard shortcut applies now (the Analyse tab is showing).
    """

    def __init__(self, window, plots, transcript, player, current: Callable, enabled: Callable[[], bool]):
        super().__init__(window)
        self.plots, self.transcript, self.player = plots, transcript, player
        self.current, self.enabled = current, enabled
        self.cursor: float | None = None  # where Play starts when nothing is selected
        self.timer = QTimer(self)
        self.timer.setInterval(PLAYHEAD_MS)
        self.timer.timeout.connect(self._tick)
        transcript.span_selected.connect(lambda a, b: self.plots.zoom_to((a, b)))
        plots.clicked.connect(self.click_at)
        plots.region_changed.connect(self._dragged)
        player.started.connect(lambda *args: self.timer.start())
        player.playing_changed.connect(self._playing_changed)
        self.space = QShortcut(QKeySequence(Qt.Key.Key_Space), window)
        self.space.setContext(Qt.ShortcutContext.WindowShortcut)
        self.space.activated.connect(self._space)

    def reset(self) -> None:
        """A different file is shown: no cursor, no playhead."""
        self.cursor = None
        self.plots.set_playhead(None)

    def click_at(self, t: float) -> None:
        """Select the word/segment at ``t`` (none in a pause) and move the play position there;
        while playing, playback jumps there."""
        row = self.current()
        if row is None or row.analysis is None:
            return
        t = min(max(t, 0.0), float(row.analysis.duration_s))
        span = self.transcript.select_at(t)
        self.plots.select_span(span)
        self.cursor = t
        self.plots.set_playhead(t)
        if self.player.playing:
            self.player.play(row.path, (t, float(row.analysis.duration_s)))

    def play_target(self) -> tuple[float, float] | None:
        """What Play plays: the selected span, else from the play position to the end, else all."""
        row = self.current()
        span = self.plots.selected_span()
        if span is not None:
            return span
        if self.cursor is not None and row is not None and row.analysis is not None:
            return self.cursor, float(row.analysis.duration_s)
        return None

    def toggle_play(self) -> bool:
        """Play (or stop) the shown file; False when there is nothing to play."""
        row = self.current()
        if row is None or row.analysis is None:
            return False
        self.player.toggle(row.path, self.play_target())
        return True

    # --- internals ---------------------------------------------------------------------------------
    def _space(self) -> None:
        if self.enabled():
            self.toggle_play()

    def _dragged(self, a: float, b: float) -> None:
        self.transcript.select_at(-1.0)  # a free span: no segment selected
        self.cursor = a
        self.plots.set_playhead(a)

    def _tick(self) -> None:
        t = self.player.position()
        if t is not None:
            self.plots.set_playhead(t)

    def _playing_changed(self, playing: bool) -> None:
        if not playing:
            self.timer.stop()
            if self.cursor is None:
                self.plots.set_playhead(None)
            else:
                self.plots.set_playhead(self.cursor)
