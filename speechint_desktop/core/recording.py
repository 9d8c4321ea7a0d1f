"""One recording on its way through the engine: what is measured before decoding (audio, speech
detection, loudness) and how decoded segments become the ``Analysis`` a user sees.

The engine decodes windows that may hold several recordings' speech; everything here is about a
single recording, so it can be prepared, collected and finished independently of the batch it
was decoded in.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import audio, loudness, vad, voice
from .asl import AslMeter
from .inorder import InOrder
from .options import TranscribeOptions
from .raw import is_hallucination
from .results import Analysis, Segment, Timings, Word

SAMPLE_RATE = 16000
MIN_HEAD_SAMPLES = 1600  # 0.1 s at 16 kHz: fewer than 5 encoder frames say nothing about level
NO_HEAD_NOTE = "no trained intensity head for this model"
TOO_SHORT_NOTE = "too short to predict intensity"
NO_SPEECH_NOTE = "no speech detected"
# A segment quieter than this (RMS) holds no voice to estimate: its model intensity stays None
# (a head asked about digital silence answers e.g. -105 dBFS, which no user should see).
NO_SIGNAL_DBFS = -70.0


def has_signal(rms_dbfs: float | None) -> bool:
    return rms_dbfs is not None and math.isfinite(rms_dbfs) and rms_dbfs > NO_SIGNAL_DBFS


class Cancelled(Exception):
    """The user cancelled; raised between decoding steps, so no half result is returned."""


def check(cancel) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def _finite(v, digits: int = 2) -> float | None:
    if v is None:
        return None
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


@dataclass
class Decoded:
    """A decoded segment placed in its recording: times in seconds of the recording."""

    start: float
    end: float
    text: str
    words: list  # decode.RawWord, recording time
    prediction: float | None
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    temperature: float | None = None


@dataclass
class Prepared:
    """A recording measured and ready to decode, then collecting what the decoder says of it."""

    label: str
    clip: audio.AudioInfo  # rate, channels, duration: the samples themselves are not kept
    x: np.ndarray  # 16 kHz mono (an ``audio.SampleStore`` on disk for long recordings)
    opts: TranscribeOptions
    loud: object  # results.Loudness
    speech: list[tuple[int, int]] = field(default_factory=list)  # unpadded, samples
    probs: np.ndarray | None = None
    decoded: list[Decoded] = field(default_factory=list)
    pooled_sum: object = None  # numpy float64: the summed head inputs over speech frames
    pooled_frames: int = 0
    contour: list = field(default_factory=list)  # (times, values) of the voice-level contour per piece
    language: str | None = None
    times: dict = field(default_factory=dict)
    levels: loudness.Levels | None = None  # the loudness pass's grid, for segment and word levels
    preview_trace: object = None  # results.LoudnessTrace: a long recording's coarser one, for previews

    @property
    def name(self) -> str:
        return Path(self.label).name

    def forget_decoding(self) -> None:
        """Drop what the decoder said so far (the recording is decoded again, on its own)."""
        self.decoded, self.contour = [], []
        self.pooled_sum, self.pooled_frames, self.language = None, 0, None

    @property
    def speech_s(self) -> list[tuple[float, float]]:
        return [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in self.speech]


def load(source) -> tuple[audio.AudioStream, str]:
    """A path, an ``AudioClip`` or a 1-D 16 kHz array → (an ``AudioStream`` of it, label).

    Files are opened, not decoded: ``prepare`` reads them block by block.
    """
    if isinstance(source, np.ndarray):
        source = audio.as_clip(source, SAMPLE_RATE)
    s = audio.stream(source)
    label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else (s.info.source or "<array>")
    return s, label


def prepare(
    source, opts: TranscribeOptions, report=None, cancel=None, vad_share: float = 0.05, tap=None
) -> Prepared:
    """Decode the audio, detect speech and measure loudness (speech-only too) in one go.

    One streaming pass: each block of the original-rate audio feeds the loudness meter (BS.1770
    energies, true peak) and the 16 kHz mono resampler, whose output feeds speech detection and
    is kept for decoding (on disk past 16 MB, ``audio.SampleStore``). No original-rate samples
    are kept: beyond a few blocks, memory grows only by the per-step true peak (3 MB an hour);
    the loudness grid goes to disk past ~11 minutes and the traces (14 MB an hour) are made
    when the result is (``with_trace``), after decoding. Speech-only loudness, known only once
    the speech is, is measured on the grid with the regions rounded to the millisecond.
    Without speech detection the 16 kHz copy is a plain array: the engine then hands the whole
    recording to transformers' long-form decoding at once. ``tap(block)`` sees every
    original-rate block too (the app builds its waveform from them instead of a second read).
    """
    report = report or (lambda f, m: None)
    t0 = time.perf_counter()
    check(cancel)
    src, label = load(source)
    info = src.info
    name = Path(label).name
    spent = {"audio": 0.0, "vad": 0.0, "loud": 0.0}
    store = audio.SampleStore() if opts.vad else None
    pieces: list[np.ndarray] = []
    meter = ahead = None
    try:
        meter = loudness.Meter(info.sample_rate, info.channels, true_peak="trace", threaded=True)
        to16 = audio.ModelInput(info.sample_rate, info.channels)
        detector = vad.SpeechDetector() if opts.vad else None
        # speech detection (onnxruntime, one thread, GIL released) runs beside the meters on a
        # thread of its own, block by block in order: the pass is ~10 % shorter on two cores
        ahead = InOrder(detector.feed, "vad") if detector is not None else None
        asl_meter = AslMeter(SAMPLE_RATE)  # P.56 on the 16 kHz mono signal the model hears
        if opts.vad:
            report(0.0, f"{name}: detecting speech")

        def take16(y: np.ndarray) -> None:
            t = time.perf_counter()
            asl_meter.feed(y)
            spent["loud"] += time.perf_counter() - t
            t = time.perf_counter()
            if store is None:
                pieces.append(y)
            else:
                store.append(y)
                ahead.submit(y)
            spent["vad"] += time.perf_counter() - t

        blocks = iter(src)
        while True:
            t = time.perf_counter()
            block = next(blocks, None)
            if block is not None:
                y = to16.feed(block)
            else:
                y = to16.finish()
            spent["audio"] += time.perf_counter() - t
            take16(y)
            if block is None:
                break
            check(cancel)
            t = time.perf_counter()
            meter.feed(block)
            spent["loud"] += time.perf_counter() - t
            if tap is not None:
                tap(block)
            if opts.vad:
                report(vad_share * src.fraction, f"{name}: detecting speech")
        t = time.perf_counter()
        levels = meter.finish()
        spent["loud"] += time.perf_counter() - t
        t = time.perf_counter()
        if store is None:
            x = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
            pieces.clear()
        else:
            x = store.finish()
        speech, probs = [], None
        if ahead is not None:
            ahead.wait()
        if opts.vad and len(x):
            probs = detector.finish()
            speech = vad.regions_from_probabilities(probs, len(x), opts.vad_options)
        spent["vad"] += time.perf_counter() - t
    except BaseException:
        if meter is not None:
            meter.close()
        if ahead is not None:
            ahead.close()
        src.close()
        if store is not None:
            store.close()
        raise
    check(cancel)
    t = time.perf_counter()
    speech_s = [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in speech]
    # the traces (14 MB an hour) are made again when the result is (``with_trace``, 40 ms for an
    # hour), so they are not held through decoding, where a 3-h file peaks
    loud = levels.loudness(speech=speech_s if opts.vad else None, trace=False)
    loud.asl_dbfs, loud.asl_activity = asl_meter.finish().rounded()
    spent["loud"] += time.perf_counter() - t
    return Prepared(
        label,
        info,
        x,
        opts,
        loud,
        speech,
        probs,
        times={"start": t0, **spent},
        levels=levels,
    )


def snap_words(p: Prepared) -> None:
    """Word spans moved onto the pauses the VAD hears (``vad.snap_to_speech``), in place."""
    if p.probs is None:
        return
    p.decoded.sort(key=lambda d: (d.start, d.end))
    words = [w for d in p.decoded for w in d.words]
    threshold = max(0.05, p.opts.vad_options.threshold - 0.15)  # silero's own exit threshold
    spans = vad.snap_to_speech([(w.start, w.end) for w in words], p.probs, threshold)
    for w, (s, e) in zip(words, spans, strict=True):
        w.start, w.end = s, e


def with_trace(p: Prepared) -> Prepared:
    """``p`` with its loudness traces, made from the grid if the pass left them out."""
    if p.loud.trace is None and p.levels is not None:
        p.loud.trace = p.levels.trace(p.levels.step or loudness.DEFAULT_STEP_S)
    return p


PREVIEW_STEPS = 1 << 16  # a preview's traces at most this many steps (11 minutes at 10 ms)


def _preview_loudness(p: Prepared):
    """The loudness a preview shows: the result's own for recordings up to ``PREVIEW_STEPS``
    steps (made once, kept for the result); past that traces at a coarser whole multiple of
    the step, so a 3-h file's preview holds 4 MB of curve through decoding, not 43 MB
    (the result gets the full traces once decoding is done)."""
    levels = p.levels
    if p.loud.trace is not None or levels is None:
        return p.loud
    step = levels.step or loudness.DEFAULT_STEP_S
    factor = math.ceil(max(0, levels.last_ms) / 1000 / step / PREVIEW_STEPS)
    if factor <= 1:
        return with_trace(p).loud
    if p.preview_trace is None:
        p.preview_trace = levels.trace(round(step * factor, 3))
    return replace(p.loud, trace=p.preview_trace)


def segments(p: Prepared) -> list[Segment]:
    """Decoded segments in time order, with text, words and the measured level of each span.

    Levels are measured over the times as they are written (rounded to the millisecond), from
    the loudness pass's grid (``p.levels``), which holds those spans exactly; without it (a
    ``Prepared`` built by hand around an ``AudioClip``) from the clip's samples.
    """
    p.decoded.sort(key=lambda d: (d.start, d.end))
    trace = with_trace(p).loud.trace
    source = p.levels if p.levels is not None else p.clip
    all_words = [w for d in p.decoded for w in d.words]
    levels = None
    if all_words and trace is not None:
        levels = loudness.span_levels(
            source,
            trace,
            np.array([round(w.start, 3) for w in all_words]),
            np.array([round(w.end, 3) for w in all_words]),
        )
    k, out = 0, []
    for d in p.decoded:
        words = []
        for j, w in enumerate(d.words):
            rms_w, mom_w = (levels[0][k + j], levels[1][k + j]) if levels is not None else (None, None)
            prob = None if w.probability is None else round(w.probability, 4)
            words.append(
                Word(round(w.start, 3), round(w.end, 3), w.text, prob, _finite(rms_w), _finite(mom_w))
            )
        k += len(d.words)
        if not d.text or is_hallucination(d, p.opts.no_speech_threshold):
            continue
        start, end = round(d.start, 3), round(d.end, 3)
        if words and words[-1].end > words[0].start:  # the words' span, snapped to the speech
            start, end = words[0].start, words[-1].end
        rms, lufs = loudness.span_loudness(source, start, end) if end > start else (None, None)
        out.append(
            Segment(
                start,
                end,
                d.text,
                rms,
                lufs,
                d.prediction if has_signal(rms) else None,
                words=words,
                avg_logprob=_finite(d.avg_logprob, 4),
                no_speech_prob=_finite(d.no_speech_prob, 4),
                temperature=d.temperature,
            )
        )
    if trace is not None:
        loudness.fill_true_peaks(trace, out)
    return out


def preview(p: Prepared, model: str) -> Analysis:
    """What is known before the analysis ends, for a view that fills in as it goes: the
    loudness (all of it once the file is read) and speech regions, and the segments decoded so
    far with their text and times only (words, levels and the intensity come with the result;
    the hallucination filter already applies)."""
    decoded = sorted((d for d in p.decoded if d.text), key=lambda d: (d.start, d.end))
    segs = [
        Segment(round(d.start, 3), round(d.end, 3), d.text)
        for d in decoded
        if not is_hallucination(d, p.opts.no_speech_threshold)
    ]
    return _analysis(p, model, segs, loud=_preview_loudness(p))


def finish(
    p: Prepared,
    model: str,
    predicted: float | None,
    head_trained: bool,
    target: str | None,
    language: str | None,
    inference_s: float,
    fusion_tau_db: float | None = None,
) -> Analysis:
    """The ``Analysis`` of a prepared and decoded recording; a voice-level head's reading is
    checked against the recording's P.56 level (``core.voice``, within ``fusion_tau_db``)."""
    t0 = time.perf_counter()
    p.preview_trace = None
    snap_words(p)
    segs = segments(p)
    if predicted is not None and not has_signal(p.loud.rms_dbfs):
        predicted = None  # digital silence: nothing spoken to estimate
    head = predicted
    if predicted is not None and target in voice.FUSION_TARGETS:
        predicted = voice.fused_level(predicted, p.loud.asl_dbfs, fusion_tau_db)
    if not head_trained:
        note = NO_HEAD_NOTE
    elif predicted is None:
        too_short = len(p.x) < MIN_HEAD_SAMPLES
        no_speech = (p.opts.vad and not p.speech) or not has_signal(p.loud.rms_dbfs)
        note = NO_SPEECH_NOTE if no_speech and not too_short else TOO_SHORT_NOTE
    else:
        note = None
    t = p.times
    measured = time.perf_counter() - t0
    return _analysis(
        p,
        model,
        segs,
        language=language,
        predicted_intensity=predicted if head_trained else None,
        intensity_target=target if head_trained else None,
        head_intensity=head if head_trained else None,
        intensity_note=note,
        timings=Timings(
            decode_s=t["audio"],
            loudness_s=t["loud"] + measured,
            inference_s=t["vad"] + inference_s,
            total_s=t["audio"] + t["vad"] + t["loud"] + inference_s + measured,
        ),
    )


def _analysis(p: Prepared, model: str, segs: list[Segment], loud=None, **more) -> Analysis:
    """The ``Analysis`` of ``p`` with these segments (``more``: the fields only a result has)."""
    return Analysis(
        source=p.label,
        duration_s=p.clip.duration_s,
        sample_rate=p.clip.sample_rate,
        channels=p.clip.channels,
        text=" ".join(s.text for s in segs),
        segments=segs,
        loudness=p.loud if loud is None else loud,
        model=model,
        speech=[(round(a, 3), round(b, 3)) for a, b in p.speech_s],
        vad=bool(p.opts.vad),
        audio_note=p.clip.note,  # a damaged or truncated file: what decoding lost
        **more,
    )
