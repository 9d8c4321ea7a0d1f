"""Help ▸ Levels explained: what the measured numbers and the model's intensity are, and why they
differ. One short page, shown in a non-modal window (the text lives here, once)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

LEVELS_HTML = """
<h3>Measured levels</h3>
<p>Computed from the samples of the file, exactly, the same way every time.</p>
<ul>
<li><b>RMS (dBFS)</b> — the average power of the signal relative to digital full scale (0 dBFS is
the loudest a file can hold). It weighs every frequency alike, so rumble and hiss count as much as
the voice.</li>
<li><b>LUFS</b> — loudness as ITU-R BS.1770-4 / EBU R128 define it: the signal is filtered to
follow the ear (K-weighting) and quiet passages are gated out. <b>Integrated</b> is the whole
file; <b>Speech</b> only the detected speech (dialogue loudness); <b>momentary</b> (400 ms) and
<b>short-term</b> (3 s) are the running curves in the plot. Delivery specs (podcast platforms,
broadcast) are written in LUFS.</li>
<li><b>Peak / true peak</b> — the largest sample, and the largest value between samples after
oversampling (dBTP), which is what clips in a player or an encoder.</li>
</ul>
<h3>Model intensity</h3>
<p>The number the model's trained <i>intensity head</i> estimates from what it hears in the
voice, in the unit it was trained on (RMS dBFS or LUFS; the column says which). It is an
<i>estimate</i> of how strongly the person speaks, not a measurement: it listens to the voice,
so background noise, music and pauses move it less than they move the measured levels, and it can
differ from them by a few dB. Use the measured levels for delivery; use the model's intensity to
compare how loudly people or takes were spoken.</p>
<p>The shipped heads report the <b>voice's own level</b> (its P.56 active speech level, noise and
room left out). Each voice's timbre leaves the head a few tenths of a dB off, while the measured
P.56 level is exact as long as the noise is well below the voice; so the file's number is the
head's reading checked against that measurement: where the two agree within the head's own error
the measurement stands, and the further apart they are (noise lifting the meter) the more the
head's reading is taken. The summary says so when the head alone read differently.</p>
<p>It is shown only when a trained head is loaded, and never for a stretch with no speech
(“—”). The Level selector in the toolbar switches the plot between RMS dBFS and LUFS; the model's
line appears in the unit it was trained on.</p>
"""


def show_levels_help(parent=None) -> QDialog:
    dialog = QDialog(parent)
    dialog.setWindowTitle("Levels explained — SpeechInt")
    dialog.resize(620, 560)
    text = QTextBrowser()
    text.setHtml(LEVELS_HTML)
    text.setOpenExternalLinks(True)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.close)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(buttons)
    dialog.show()
    return dialog
