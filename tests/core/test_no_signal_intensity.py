"""The model's intensity is never reported for a stretch with no signal (a head asked about digital
silence answers a number like -105 dBFS): the real tiny.en with its shipped (trained) head."""

from __future__ import annotations

import numpy as np
import pytest

from speechint_desktop.core.engine import Engine
from speechint_desktop.core.options import TranscribeOptions
from speechint_desktop.core.recording import NO_SIGNAL_DBFS, NO_SPEECH_NOTE, has_signal


@pytest.fixture(scope="module")
def shipped(tiny_en_dir) -> Engine:
    e = Engine(str(tiny_en_dir), device="cpu", threads=1)
    assert e.head_trained
    return e


def test_silence_gets_no_intensity(shipped, jfk_path):
    from speechint_desktop.core.audio import load_audio, to_model_input

    silence = np.zeros(16000 * 4, np.float32)
    a = shipped.analyze(silence, options=TranscribeOptions(vad=False))
    assert a.predicted_intensity is None and a.intensity_note == NO_SPEECH_NOTE
    assert all(s.predicted_intensity is None for s in a.segments)

    # speech then near-silence: the speech keeps its estimate, nothing is given for the rest
    jfk = to_model_input(load_audio(jfk_path))
    x = np.concatenate([jfk, np.full(16000 * 6, 1e-5, np.float32)])
    b = shipped.analyze(x, options=TranscribeOptions(vad=False))
    assert b.predicted_intensity is not None
    spoken = [s for s in b.segments if s.end <= len(jfk) / 16000 + 0.5]
    assert spoken and all(s.predicted_intensity is not None for s in spoken)
    for s in b.segments:
        if s.predicted_intensity is not None:
            assert has_signal(s.rms_dbfs) and s.rms_dbfs > NO_SIGNAL_DBFS
