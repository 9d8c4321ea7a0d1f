"""The analysis engine on the real tiny.en and real speech: transcript, segments, loudness,
long-form audio, the intensity head (never an untrained number), batches and cancel."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from speechint_desktop.core import audio
from speechint_desktop.core.device import DeviceError, list_devices, pick_device
from speechint_desktop.core.engine import NO_HEAD_NOTE, Cancelled, Engine
from speechint_desktop.core.model import encoder_frames_for, head_inputs, pool_encoder, save_head
from speechint_desktop.core.options import TranscribeOptions
from speechint_desktop.core.results import Analysis, FileError
from speechint_desktop.core.text import wer

JFK_TEXT = (
    "And so, my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


@pytest.fixture(scope="module")
def engine(tiny_en_dir) -> Engine:
    # one thread: on a shared 2-core machine torch's threads mostly wait for each other
    return Engine(str(tiny_en_dir), device="cpu", threads=1, head=False)


@pytest.fixture(scope="module")
def jfk16(jfk_path) -> np.ndarray:
    return audio.to_model_input(audio.load_audio(jfk_path))


def assert_sane_segments(a: Analysis) -> None:
    assert a.segments
    prev_start = -1.0
    for s in a.segments:
        assert 0.0 <= s.start <= s.end <= a.duration_s + 0.05, s
        assert s.start >= prev_start, "segments out of order"
        assert s.text.strip()
        prev_start = s.start


def test_jfk_transcript_segments_loudness(engine, jfk_path):
    a = engine.analyze(jfk_path)
    assert wer(JFK_TEXT, a.text) <= 0.05, a.text
    assert a.source == str(jfk_path)
    assert math.isclose(a.duration_s, 11.0, abs_tol=0.01)
    assert (a.sample_rate, a.channels, a.language) == (44100, 2, "en")
    assert_sane_segments(a)
    assert a.segments[-1].end > 9.0
    assert all(s.rms_dbfs is not None and -60 < s.rms_dbfs < 0 for s in a.segments)
    loud = a.loudness
    assert loud.integrated_lufs is not None and -40 < loud.integrated_lufs < -5
    assert loud.loudness_range_lu is not None and loud.trace is not None
    assert loud.sample_peak_dbfs <= 0.0
    t = a.timings
    assert t.inference_s > 0 and t.total_s >= t.inference_s + t.loudness_s - 1e-6


def test_untrained_head_never_yields_a_number(engine, jfk_path):
    assert not engine.head_trained
    a = engine.analyze(jfk_path)
    assert a.predicted_intensity is None and a.intensity_target is None
    assert a.intensity_note == NO_HEAD_NOTE
    assert all(s.predicted_intensity is None for s in a.segments)
    assert a.to_dict()["predicted_intensity"] is None


def test_long_recording_beyond_30_s(engine, jfk16):
    gap = np.zeros(16000 * 3, np.float32)
    x = np.concatenate([jfk16, gap, jfk16, gap, jfk16, gap, jfk16, gap, jfk16, gap, jfk16])  # ~81 s
    seen = []
    a = engine.analyze(x, progress=lambda f, m: seen.append(f))
    assert a.source == "<array>" and math.isclose(a.duration_s, len(x) / 16000)
    assert_sane_segments(a)
    assert a.segments[-1].end > 70.0
    assert any(30 < s.start < 60 for s in a.segments)
    assert a.text.lower().count("country") >= 10  # every repetition transcribed, none lost
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) >= 3


def test_a_trained_head_gives_file_and_segment_predictions(engine, tiny_en_dir, jfk16, tmp_path):
    from speechint_desktop.core.model import WhisperForASRAndIntensity, load_model

    head = save_head(
        WhisperForASRAndIntensity.from_pretrained(tiny_en_dir),
        tmp_path / "tiny.en.safetensors",
        card={"note": "test head"},
    )
    trained = Engine(str(tiny_en_dir), device="cpu", threads=1, head=head)
    assert trained.head_trained and trained.head_card["card"] == {"note": "test head"}
    a = trained.analyze(jfk16)
    assert a.intensity_note is None and a.intensity_target == "rms_dbfs"
    assert a.predicted_intensity is not None and math.isfinite(a.predicted_intensity)
    assert a.segments and all(s.predicted_intensity is not None for s in a.segments)
    # without speech detection the file-level number pools the frames that hold audio (not
    # Whisper's 30 s padding), from the same encoder pass as the decoder's; the expected value
    # from transformers' features and the torch head (the engine runs its numpy twin)
    a = trained.analyze(jfk16, options=TranscribeOptions(vad=False))
    torch_model = load_model(str(tiny_en_dir), head=head).model.eval()
    feats = trained.processor.feature_extractor(
        jfk16, sampling_rate=16000, return_tensors="pt"
    ).input_features
    import dataclasses

    from speechint_desktop.core import ct2, mel

    # the engine's features: the 11 s clip read as a 20 s input (``ct2.window_seconds``)
    fitted = dataclasses.replace(mel.settings(tiny_en_dir), chunk_length=ct2.window_seconds(len(jfk16)))
    assert fitted.chunk_length == 20
    ours = torch.from_numpy(mel.log_mel([jfk16], config=fitted))
    with torch.inference_mode():
        # the decoder's encoder pass: CTranslate2's (int8) on the default backend
        hidden = torch.from_numpy(trained._ct2.encode(ours.numpy()))
        frame_inputs = head_inputs(hidden, ours)
        expected = float(torch_model.head(pool_encoder(frame_inputs, encoder_frames_for(len(jfk16))))[0])
        whole_window = float(torch_model.head(pool_encoder(frame_inputs))[0])
        fp32 = head_inputs(trained.whisper.model.encoder(feats).last_hidden_state, feats)
        fp32_expected = float(torch_model.head(pool_encoder(fp32, encoder_frames_for(len(jfk16))))[0])
    assert a.predicted_intensity == pytest.approx(expected, abs=1e-3)
    assert abs(expected - whole_window) > 1e-3
    # int8 encoder states move a head trained on float32 ones by hundredths of a dB
    assert expected == pytest.approx(fp32_expected, abs=0.1)


def test_trained_head_on_tiny_random_model(tiny_random_dir, ldc_path, tmp_path):
    from speechint_desktop.core.model import WhisperForASRAndIntensity

    m = WhisperForASRAndIntensity.from_pretrained(tiny_random_dir)
    m.config.intensity_target = "lufs"
    head = save_head(m, tmp_path / "random.safetensors")
    e = Engine(str(tiny_random_dir), device="cpu", threads=1, head=head)
    a = e.analyze(ldc_path)
    assert a.intensity_target == "lufs" and math.isfinite(a.predicted_intensity)
    plain = Engine(str(tiny_random_dir), device="cpu", threads=1, head=False).analyze(ldc_path)
    assert plain.predicted_intensity is None and plain.intensity_note == NO_HEAD_NOTE


def test_analyze_many_reports_bad_files_and_goes_on(engine, jfk_path, ldc_path, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_text("this is not audio\n" * 20)
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    results = list(engine.analyze_many([broken, jfk_path, empty, ldc_path]))
    by_source = {r.source: r for r in results}
    assert isinstance(by_source[str(broken)], FileError)
    assert isinstance(by_source[str(empty)], FileError)
    assert "broken.wav" in by_source[str(broken)].message and "\n" not in by_source[str(broken)].message
    assert isinstance(by_source[str(jfk_path)], Analysis)
    ldc = by_source[str(ldc_path)]
    assert isinstance(ldc, Analysis) and "greasy wash water" in ldc.text.lower()


def test_cancel(engine, jfk16):
    done = threading.Event()
    done.set()
    with pytest.raises(Cancelled):
        engine.analyze(jfk16, cancel=done)
    stop = threading.Event()
    x = np.concatenate([jfk16] * 7)  # 77 s: three windows

    def progress(fraction, message):
        if fraction > 0:
            stop.set()  # the user presses cancel after the first window

    with pytest.raises(Cancelled):
        engine.analyze(x, progress=progress, cancel=stop)
    with pytest.raises(Cancelled):
        list(engine.analyze_many([x for x in []] or ["/nonexistent.wav"], cancel=done))


def test_devices():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda")
    assert list_devices()[0].kind == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            pick_device("cuda")
    with pytest.raises(DeviceError, match="unknown device"):
        pick_device("tpu")


def test_the_shipped_head_reads_real_speech_and_says_when_it_cannot(tiny_en_dir, ldc_path):
    """The catalogue model gets its shipped head; a clip with no frames gets a note, not a number."""
    from speechint_desktop.core.engine import TOO_SHORT_NOTE

    shipped = Engine(str(tiny_en_dir), device="cpu", threads=1)
    assert shipped.head_trained
    a = shipped.analyze(ldc_path)
    assert a.intensity_target == "voice_asl_dbfs" and a.intensity_note is None
    # the shipped head reads the voice's P.56 active level; on clean speech that is the meter's
    assert abs(a.predicted_intensity - a.loudness.asl_dbfs) < 1.5
    assert a.loudness.asl_dbfs - a.loudness.rms_dbfs == pytest.approx(
        -10 * math.log10(a.loudness.asl_activity), abs=0.01
    )
    # the voice-level contour: 400 ms spans every 100 ms over the decoded speech, near the voice level
    vc = a.voice_contour
    assert vc is not None and len(vc.times) >= 15 and np.all(np.diff(vc.times) > 0)
    assert 0.0 <= vc.times[0] and vc.times[-1] <= a.duration_s
    assert abs(np.median(vc.values) - a.loudness.asl_dbfs) < 3.0
    empty = shipped.analyze(np.zeros(1, dtype=np.float32))
    assert empty.predicted_intensity is None and empty.intensity_note == TOO_SHORT_NOTE


def test_float16_needs_a_gpu(tiny_en_dir):
    with pytest.raises(ValueError, match="CUDA GPU only"):
        Engine(str(tiny_en_dir), device="cpu", compute="float16")
    assert Engine(str(tiny_en_dir), device="cpu", head=False).compute == "int8_proj"  # auto on a CPU


def test_int8_projection_keeps_the_words_and_the_float32_encoder(tiny_en_dir, jfk_path, ldc_path):
    """The CPU default quantises the output projection only: same words as float32 on real
    speech, and the encoder (whose states the head reads) untouched."""
    from torch import nn

    full = Engine(str(tiny_en_dir), device="cpu", compute="float32", backend="torch")
    fast = Engine(str(tiny_en_dir), device="cpu", backend="torch")
    assert type(fast.whisper.proj_out) is not nn.Linear  # a dynamic int8 Linear
    assert all(type(m) is nn.Linear for m in fast.whisper.model.encoder.modules() if isinstance(m, nn.Linear))
    assert all(type(m) is nn.Linear for m in fast.whisper.model.decoder.modules() if isinstance(m, nn.Linear))
    greedy = TranscribeOptions(beam_size=1)  # the projection's rounding alone decides each token
    for path in (jfk_path, ldc_path):
        a, b = full.analyze(path, options=greedy), fast.analyze(path, options=greedy)
        assert wer(a.text, b.text) <= 0.05, (a.text, b.text)
        assert a.predicted_intensity == pytest.approx(b.predicted_intensity, abs=1e-4)


def test_recordings_are_prepared_without_the_model_imports(jfk_path):
    """Reading, metering and searching a recording for speech is independent of the model:
    it imports neither torch nor transformers nor the model module."""
    import subprocess
    import sys

    code = (
        "import sys; from speechint_desktop.core import engine, recording; "
        "from speechint_desktop.core.options import TranscribeOptions; "
        f"p = recording.prepare({str(jfk_path)!r}, TranscribeOptions()); "
        "print(len(p.speech) > 0, 'transformers' in sys.modules, 'speechint_desktop.core.model' in sys.modules, "
        "'torch' in sys.modules)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["True", "False", "False", "False"], r.stderr[-2000:]


def test_a_whole_analysis_on_ctranslate2_imports_no_torch_transformers_or_scipy(tiny_en_dir, jfk_path):
    """The start-up the CLI pays: once the model's int8 form is stored, an analysis with the
    shipped head needs none of the heavy libraries (torch alone is over a second)."""
    import subprocess
    import sys

    from speechint_desktop.core import ct2

    ct2.stored_form(tiny_en_dir, quantization="int8")  # converting it would need torch, once
    code = (
        "import sys; from speechint_desktop.core.engine import Engine; "
        f"e = Engine({str(tiny_en_dir)!r}, device='cpu'); a = e.analyze({str(jfk_path)!r}); "
        "print(e.backend, e.head_trained, 'country' in a.text.lower(), a.predicted_intensity is not None, "
        "[m for m in ('torch', 'transformers', 'scipy', 'silero_vad') if m in sys.modules])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.stdout.split() == ["ct2", "True", "True", "True", "[]"], r.stderr[-2000:]


def test_a_mistyped_model_is_said_before_anything_loads():
    from speechint_desktop.core.catalog import ModelError

    with pytest.raises(ModelError, match="unknown model 'tiny-en'.*openai/whisper-base.en"):
        Engine("tiny-en")
