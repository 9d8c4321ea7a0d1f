"""Delivery compliance in the app: the spec picker, the panel for the shown file, the queue's Spec column.

``SpecChecker`` (no widget) holds the chosen spec and checks analyses with ``core.delivery.check``
on their ``Analysis.loudness`` — no audio needed — except for a noise-floor limit (ACX), which
needs the samples: the noise floor is measured on the thread pool (``delivery.noise_floor`` of
the decoded file), one file at a time, the shown file first, and is "pending" until known.

``core.delivery`` (with the meters it uses, ~0.2 s) is imported on the analysis thread, not the
GUI thread (``AnalysisWorker.delivery_ready``); until then the checker answers None and the panel
says the specs are loading.
"""

from __future__ import annotations

import html
import sys
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QCheckBox, QComboBox, QFrame, QHBoxLayout, QLabel, QVBoxLayout

from speechint_desktop.ui.settings import DEFAULT_SPEC
from speechint_desktop.ui.workers import run_job

DELIVERY = "speechint_desktop.core.delivery"
PASS, FAIL, PENDING = "pass", "fail", "pending"
COLORS = {PASS: "#2e8b57", FAIL: "#d9534f", PENDING: "#8a8f95"}
MARKS = {PASS: "✓", FAIL: "✗", PENDING: "…"}
_QCOLORS = {k: QColor(v) for k, v in COLORS.items()}
NOISE_FLOOR = "noise floor"  # core.delivery's criterion name for it
GREY = "#777"


def loaded_delivery():
    """``core.delivery`` if it is fully imported (by any thread), else None — never imports it."""
    module = sys.modules.get(DELIVERY)
    if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
        return None
    return module if hasattr(module, "check") else None


@dataclass
class NoiseFloor:
    """A file's measured noise floor (dBFS; None when no 0.5 s window qualifies)."""

    value: float | None
    silence: bool = False  # the file holds digital silence
    error: str | None = None  # it could not be measured (file gone, unreadable)


@dataclass
class Verdict:
    """A file against the spec: ``compliance`` (core.delivery.Compliance) and what is still pending."""

    compliance: object
    pending: frozenset = frozenset()  # criterion names not known yet (the noise floor being measured)

    def state_of(self, criterion) -> str:
        if criterion.name in self.pending:
            return PENDING
        return PASS if criterion.passed else FAIL

    @property
    def failed(self) -> list:
        return [c for c in self.compliance.criteria if self.state_of(c) == FAIL]

    @property
    def state(self) -> str:
        if self.failed:
            return FAIL
        return PENDING if self.pending else PASS

    def tooltip(self) -> str:
        spec = self.compliance.spec
        title = spec.title if spec.name != "custom" else spec.summary()
        if self.state == PASS:
            return f"{title}: meets every criterion ({spec.summary()})"
        lines = [f"{title}: " + ("fails" if self.state == FAIL else "checking…")]
        for c in self.failed:
            lines.append(
                f"✗ {c.name}: {measured_text(c)} (limit {c.limit})" + (f" — {c.note}" if c.note else "")
            )
        if self.pending:
            lines.append(f"… {', '.join(sorted(self.pending))} still being measured")
        return "\n".join(lines)


def measured_text(criterion, pending: bool = False) -> str:
    if pending:
        return "measuring…"
    if criterion.measured is None:
        return "—"
    return f"{criterion.measured:.1f} {criterion.unit}"


class SpecChecker(QObject):
    """The chosen delivery spec and each analysis's verdict against it (cached per result)."""

    changed = Signal()  # verdicts may differ (spec changed, a noise floor became known, specs loaded)
    ready = Signal()  # core.delivery is loaded: spec lists can be filled

    def __init__(self, settings=None, parent=None):
        super().__init__(parent)
        self.settings = settings
        self._name = settings.delivery_spec if settings is not None else DEFAULT_SPEC
        self._speech_only = settings.delivery_speech_only if settings is not None else False
        self._announced = False
        self._cache: dict[str, tuple[object, Verdict]] = {}
        self._floors: dict[str, tuple[object, NoiseFloor]] = {}
        self._queue: list[tuple[str, object]] = []
        self._measuring: str | None = None

    # --- the spec -----------------------------------------------------------------------------
    @property
    def delivery(self):
        return loaded_delivery()

    @property
    def is_ready(self) -> bool:
        return self.delivery is not None

    def notify_loaded(self) -> None:
        """``core.delivery`` has been imported (the analysis thread says so): fill and check."""
        if self.is_ready and not self._announced:
            self._announced = True
            self.ready.emit()
            self.changed.emit()

    @property
    def spec_name(self) -> str:
        d = self.delivery
        if d is not None and self._name not in d.PRESETS:
            return DEFAULT_SPEC
        return self._name

    @property
    def speech_only(self) -> bool:
        return self._speech_only

    def presets(self) -> list:
        d = self.delivery
        return list(d.PRESETS.values()) if d is not None else []

    def spec(self):
        """The ``core.delivery.Spec`` checked (with speech-only loudness if asked), or None."""
        d = self.delivery
        if d is None:
            return None
        base = d.PRESETS[self.spec_name]
        return base.with_(speech_only=True) if self._speech_only and base.target_lufs is not None else base

    def set_spec(self, name: str) -> None:
        if name == self._name:
            return
        self._name = name
        if self.settings is not None:
            self.settings.delivery_spec = name
        self._cache.clear()
        self.changed.emit()

    def set_speech_only(self, on: bool) -> None:
        if bool(on) == self._speech_only:
            return
        self._speech_only = bool(on)
        if self.settings is not None:
            self.settings.delivery_speech_only = bool(on)
        self._cache.clear()
        self.changed.emit()

    # --- verdicts -----------------------------------------------------------------------------
    def check(self, analysis, first: bool = False) -> Verdict | None:
        """The analysis against the spec; None until ``core.delivery`` is loaded. A noise-floor
        limit starts measuring the file (``first``: ahead of the others) and is pending meanwhile."""
        spec = self.spec()
        if spec is None or analysis is None:
            return None
        path = str(analysis.source)
        cached = self._cache.get(path)
        if cached is not None and cached[0] is analysis:
            if first and cached[1].pending:
                self._request(path, analysis, first=True)
            return cached[1]
        floor, pending = None, frozenset()
        if spec.noise_floor_max_dbfs is not None:
            known = self._floors.get(path)
            if known is not None and known[0] is analysis:
                floor = known[1]
            else:
                pending = frozenset({NOISE_FLOOR})
                self._request(path, analysis, first)
        compliance = self.delivery.check(analysis.loudness, spec, floor.value if floor else None)
        compliance.source = path
        if floor is not None:
            for c in compliance.criteria:
                if c.name == NOISE_FLOOR and c.measured is None:
                    c.note = floor.error or "no 0.5 s without digital silence"
            if floor.silence:
                compliance.note = self.delivery.SILENCE_NOTE
        verdict = Verdict(compliance, pending)
        self._cache[path] = (analysis, verdict)
        return verdict

    def cell(self, row):
        """The queue's Spec cell for a ``results_table.Row``: (text, tooltip function, colour, sort
        key), or None before the specs are loaded."""
        verdict = self.check(row.analysis) if row.analysis is not None else None
        if verdict is None:
            return None
        state = verdict.state
        return MARKS[state], verdict.tooltip, _QCOLORS[state], {FAIL: 0, PENDING: 1, PASS: 2}[state]

    def noise_floor(self, path: str) -> NoiseFloor | None:
        known = self._floors.get(str(path))
        return known[1] if known else None

    def forget(self, path: str) -> None:
        """Drop what is known of ``path`` (it was analysed again, or changed on disk)."""
        self._cache.pop(str(path), None)
        self._floors.pop(str(path), None)

    # --- noise floors, measured off the GUI thread, one file at a time ---------------------------------
    def _request(self, path: str, analysis, first: bool = False) -> None:
        if self._measuring == path:
            return
        queued = any(p == path for p, _ in self._queue)
        if queued and not first:
            return
        self._queue = [(p, a) for p, a in self._queue if p != path]
        self._queue.insert(0 if first else len(self._queue), (path, analysis))
        self._next()

    def _next(self) -> None:
        if self._measuring is not None or not self._queue:
            return
        path, analysis = self._queue.pop(0)
        self._measuring = path

        def measure():
            from speechint_desktop.core import delivery

            _, levels = delivery.measure_levels(path)  # streamed: an hour-long file is never held
            try:
                value, silence = delivery.noise_floor(levels)
            finally:
                levels.close()
            return NoiseFloor(value, silence)

        def done(floor: NoiseFloor) -> None:
            self._measuring = None
            self._floors[path] = (analysis, floor)
            self._cache.pop(path, None)
            self.changed.emit()
            self._next()

        def failed(message: str) -> None:
            done(NoiseFloor(None, False, f"could not measure: {message}"))

        run_job(measure, done, failed, owner=self)


class CompliancePanel(QFrame):
    """The shown file against the chosen spec: a spec picker, the verdict, one line per criterion."""

    def __init__(self, checker: SpecChecker, parent=None):
        super().__init__(parent)
        self.checker = checker
        self.setObjectName("compliance")
        self.setStyleSheet("#compliance { background: #f4f6f8; border-radius: 4px; }")
        self.spec_box = QComboBox()
        self.spec_box.setMinimumWidth(190)
        self.spec_box.setToolTip(
            "The delivery spec the shown file and the queue's Spec column are checked against"
        )
        self.speech_box = QCheckBox("Speech only")
        self.speech_box.setToolTip(
            "Judge the loudness of the detected speech alone (dialogue loudness) instead of the whole"
            " programme; needs speech detection on when the file was analysed"
        )
        self.speech_box.setChecked(checker.speech_only)
        self.verdict = QLabel("")
        self.verdict.setStyleSheet("font-weight: bold; font-size: 11pt; padding-right: 4px;")
        self.body = QLabel("")
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        title = QLabel("<b>Delivery</b>")
        head.addWidget(title)
        head.addWidget(self.spec_box)
        head.addWidget(self.speech_box)
        head.addStretch(1)
        head.addWidget(self.verdict)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(2)
        layout.addLayout(head)
        layout.addWidget(self.body)

        self._analysis = None
        self._message = ""
        self._verdict: Verdict | None = None
        # a new file is shown one event-loop turn after the summary, transcript and plots, so its
        # repaint is not added to theirs (the GUI never stalls when a result arrives)
        self._later = QTimer(self, singleShot=True, interval=0)
        self._later.timeout.connect(self.refresh)
        self.fill_specs()
        self.spec_box.activated.connect(self._spec_picked)
        self.speech_box.toggled.connect(checker.set_speech_only)
        checker.ready.connect(self.fill_specs)
        checker.changed.connect(self.refresh)

    def fill_specs(self) -> None:
        self.spec_box.blockSignals(True)
        self.spec_box.clear()
        presets = self.checker.presets()
        if not presets:
            self.spec_box.addItem("Loading the specs…", self.checker.spec_name)
            self.spec_box.setEnabled(False)
        for spec in presets:
            self.spec_box.addItem(spec.title, spec.name)
            self.spec_box.setItemData(self.spec_box.count() - 1, spec.summary(), Qt.ItemDataRole.ToolTipRole)
        if presets:
            self.spec_box.setEnabled(True)
            self.spec_box.setCurrentIndex(max(0, self.spec_box.findData(self.checker.spec_name)))
        self.spec_box.blockSignals(False)
        self._update_speech_box()
        self.refresh()

    def set_spec(self, name: str) -> None:
        """Pick a spec as the user would (the combo follows)."""
        i = self.spec_box.findData(name)
        if i >= 0:
            self.spec_box.setCurrentIndex(i)
        self.checker.set_spec(name)
        self._update_speech_box()

    def show_analysis(self, analysis, message: str = "") -> None:
        """Check ``analysis`` (None: show ``message`` instead, e.g. the file's status), in the next
        event-loop turn."""
        self._analysis, self._message = analysis, message
        self._later.start()

    # --- what the panel shows (tests read these) ----------------------------------------------
    @property
    def state(self) -> str | None:
        return self._verdict.state if self._verdict is not None else None

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(criterion, measured, limit, pass/fail/pending) as listed."""
        v = self._verdict
        if v is None:
            return []
        return [
            (c.name, measured_text(c, v.state_of(c) == PENDING), c.limit, v.state_of(c))
            for c in v.compliance.criteria
        ]

    # --- internals ----------------------------------------------------------------------------
    def _spec_picked(self, index: int) -> None:
        self.checker.set_spec(self.spec_box.itemData(index))
        self._update_speech_box()

    def _update_speech_box(self) -> None:
        spec = self.checker.spec()
        self.speech_box.setEnabled(spec is not None and spec.target_lufs is not None)

    def refresh(self) -> None:
        a = self._analysis
        self._verdict = None
        if not self.checker.is_ready:
            self._set("", _grey("Loading the delivery specs…"))
            return
        spec = self.checker.spec()
        if a is None:
            self._set("", _grey(spec.summary()) + (f"<br>{_grey(self._message)}" if self._message else ""))
            return
        self._verdict = v = self.checker.check(a, first=True)
        state = v.state
        word = {PASS: "PASS", FAIL: "FAIL", PENDING: "checking…"}[state]
        verdict = f"<span style='color:{COLORS[state]}'>{MARKS[state]} {word}</span>"
        td = "<td style='padding:1px 14px 1px 0; white-space:nowrap'>"
        head = "".join(f"{td}<i>{h}</i></td>" for h in ("Criterion", "Measured", "Limit", "Result"))
        lines = [f"<tr>{head}</tr>"]
        for c in v.compliance.criteria:
            s = v.state_of(c)
            result = f"<span style='color:{COLORS[s]}'><b>{MARKS[s]} {s}</b></span>"
            if c.note and s != PENDING:
                result += f" {_grey(c.note)}"
            cells = (html.escape(c.name), f"<b>{html.escape(measured_text(c, s == PENDING))}</b>",
                     html.escape(c.limit), result)  # fmt: skip
            lines.append("<tr>" + "".join(f"{td}{x}</td>" for x in cells) + "</tr>")
        note = f"<br>{_grey(v.compliance.note)}" if v.compliance.note else ""
        self._set(verdict, f"<table cellspacing='0'>{''.join(lines)}</table>{note}")

    def _set(self, verdict: str, body: str) -> None:
        self.verdict.setText(verdict)
        self.body.setText(body)


def _grey(text: str) -> str:
    return f"<span style='color:{GREY}'>{html.escape(text)}</span>"
