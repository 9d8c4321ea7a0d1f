"""One pass over a recording: transcript with word timings, measured loudness, predicted intensity.

1. Speech detection (``vad``): Silero VAD finds speech; padded regions are packed into windows
   of at most 30 s, so silence and noise never reach the decoder. ``vad=False`` decodes the whole
   recording instead, in openai-whisper's seeking 30 s windows.
2. Decoding (``decode``): transformers' Whisper ``generate`` with temperature fallback, the
   no-speech skip and cross-attention word timings, a batch of windows at a time. Each window's
   encoder states, computed once, feed both the decoder and the intensity head.
3. Times are mapped back from the packed windows to the recording's clock; every segment and
   word gets its measured loudness; the head pools over speech frames only.

The CLI, the Python API and the app all use this engine; an untrained head never produces a
number (``predicted_intensity`` stays None and ``intensity_note`` says why).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from . import audio, loudness, vad
from .options import TranscribeOptions
from .results import Analysis, FileError, Segment, Timings, Word

# OpenMP threads that spin while waiting make torch several times slower whenever the CPU is
# shared (measured here: RTF 0.88 → 0.12 on 2 busy cores). Only effective if set before torch
# loads, so the CLI and the app import this module (or set it) first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

Progress = Callable[[float, str], None]

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 30 * SAMPLE_RATE
SAMPLES_PER_FRAME = 320  # one encoder frame = one timestamp step (20 ms)
FRAMES_PER_S = SAMPLE_RATE / SAMPLES_PER_FRAME
NO_HEAD_NOTE = "no trained intensity head for this model"
TOO_SHORT_NOTE = "too short to predict intensity"
NO_SPEECH_NOTE = "no speech detected"
VAD_SHARE = 0.05  # of the progress bar, for speech detection
MIN_HEAD_SAMPLES = 1600  # 0.1 s at 16 kHz: fewer than 5 encoder frames say nothing about level
COMPUTE_TYPES = ("float32", "int8")


class Cancelled(Exception):
    """The user cancelled; raised between decoding steps, so no half result is returned."""


class _DropGenerateDeprecation(logging.Filter):
    """transformers 5.x logs deprecation notices from inside Whisper's own ``generate``."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return "together with generation-related" not in msg and "return_segments" not in msg


def _check(cancel) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def _finite(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return round(v, 2) if math.isfinite(v) else None


class Engine:
    """Loads a model once; ``analyze`` any number of recordings with it.

    ``model``: a catalogue name (``tiny.en``, ``base``, ``small``) or a checkpoint folder.
    ``compute="int8"`` dynamically quantises the Whisper Linear layers (CPU only; the
    intensity head stays float32). ``threads`` caps torch's CPU threads (default: torch's
    choice, or ``$SPEECHINT_THREADS``). ``head``: a head file to attach, ``None`` to use the
    shipped head for a catalogue model, ``False`` for none. ``options``: how to transcribe
    (``TranscribeOptions``: speech detection, fallback, word timings); ``batch_size``: windows
    decoded together.
    """

    def __init__(
        self,
        model: str = "tiny.en",
        device: str = "auto",
        compute: str = "float32",
        threads: int | None = None,
        head: str | os.PathLike | None | bool = None,
        language: str | None = None,
        progress: Progress | None = None,
        options: TranscribeOptions | None = None,
        batch_size: int | None = None,
    ):
        import torch
        import transformers
        from transformers import WhisperProcessor

        from . import catalog
        from .decode import install_compaction
        from .device import pick_device
        from .model import WhisperForASRAndIntensity, load_head

        if compute not in COMPUTE_TYPES:
            raise ValueError(f"unknown compute type {compute!r} (use {' or '.join(COMPUTE_TYPES)})")
        threads = threads or int(os.environ.get("SPEECHINT_THREADS", "0") or 0)
        if threads:
            torch.set_num_threads(int(threads))
        self.device = pick_device(device)
        if compute == "int8" and self.device.type != "cpu":
            raise ValueError("compute int8 runs on the CPU only (use --compute float32 on a GPU)")
        self.model_name = str(model)
        self.compute = compute
        report = progress or (lambda f, m: None)
        report(0.0, f"loading {self.model_name}")
        path = catalog.resolve(model)
        self.model_path = path

        tlog = transformers.utils.logging
        verbosity, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
        tlog.set_verbosity_error()  # the "head missing" load report is expected, not news
        tlog.disable_progress_bar()
        try:
            # eager attention: word timings read the cross-attention weights
            m = WhisperForASRAndIntensity.from_pretrained(
                path, dtype=torch.float32, attn_implementation="eager"
            )
            self.processor = WhisperProcessor.from_pretrained(path)
        finally:
            tlog.set_verbosity(verbosity)
            if bars:
                tlog.enable_progress_bar()
        logging.getLogger("transformers.generation.utils").addFilter(_DropGenerateDeprecation())

        self.head_card: dict | None = None
        if head is not False and not m.config.intensity_head_trained:
            shipped = head in (None, True)
            head_file = self._shipped_head(catalog, path) if shipped else head
            if head_file is not None:
                try:
                    self.head_card = load_head(m, head_file)
                except ValueError as e:
                    if not shipped:
                        raise
                    # a stale shipped head must not stop transcription: measured loudness only
                    logging.getLogger(__name__).warning("intensity head not used: %s", e)
        m.eval().to(self.device)
        if compute == "int8":
            from torch import nn
            from torch.ao.quantization import quantize_dynamic

            # Whisper's Linear layers only: the small head stays float32
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's own deprecation notice for qint8 tensors
                quantize_dynamic(m.model, {nn.Linear}, dtype=torch.qint8, inplace=True)
                m.proj_out = quantize_dynamic(nn.Sequential(m.proj_out), {nn.Linear}, dtype=torch.qint8)[0]
        self.model = m
        install_compaction(m)
        self.options = options or TranscribeOptions(language=language)
        # windows decoded together: more on a GPU, where one window leaves it mostly idle
        self.batch_size = int(batch_size or (16 if self.device.type == "cuda" else 4))
        self._setup_generation()
        self._lock = threading.Lock()
        report(1.0, f"{self.model_name} ready")

    def _shipped_head(self, catalog, path: str):
        """The head shipped for a catalogue model, also when it is named by its folder."""
        for name in catalog.CATALOG:
            if name == self.model_name or Path(path).resolve() == catalog.model_path(name).resolve():
                return catalog.head_path(name)
        return None

    # --- generation set-up ----------------------------------------------------------------

    def _setup_generation(self) -> None:
        import torch

        gc = self.model.generation_config
        vocab = self.model.config.vocab_size
        suppress = torch.zeros(vocab, dtype=torch.bool)
        begin = torch.zeros(vocab, dtype=torch.bool)
        # torch.isin (used by transformers' suppress processors) is ~100x slower multi-threaded
        # on a busy CPU; precomputed masks do the same job.
        suppress[[t for t in (gc.suppress_tokens or []) if t < vocab]] = True
        begin[[t for t in (gc.begin_suppress_tokens or []) if t < vocab]] = True
        gc.suppress_tokens = None
        gc.begin_suppress_tokens = None
        self._suppress = suppress.to(self.device)
        self._begin_suppress = (begin | suppress).to(self.device)
        self._timestamp_begin = int(gc.no_timestamps_token_id) + 1
        self._eos = int(gc.eos_token_id)
        self.multilingual = bool(getattr(gc, "is_multilingual", False))
        self.language = None

    def _processors(self):
        from transformers import LogitsProcessor, LogitsProcessorList

        suppress, begin = self._suppress, self._begin_suppress

        class _Suppress(LogitsProcessor):
            start: int | None = None

            def set_begin_index(self, index: int) -> None:  # generate sets it per seek step
                self.start = index

            def __call__(self, input_ids, scores):
                if self.start is None:
                    self.start = input_ids.shape[-1]
                mask = begin if input_ids.shape[-1] == self.start else suppress
                return scores.masked_fill(mask[: scores.shape[-1]], -math.inf)

        return LogitsProcessorList([_Suppress()])

    @property
    def head_trained(self) -> bool:
        return bool(self.model.config.intensity_head_trained)

    @property
    def intensity_target(self) -> str:
        return str(self.model.config.intensity_target)

    # --- decoding a batch of inputs ---------------------------------------------------------

    def _language(self, features, opts: TranscribeOptions) -> str | None:
        """The language to decode in: the option, else detected on the first window."""
        if not self.multilingual:
            return "en"
        if opts.language:
            return opts.language
        import torch

        with torch.inference_mode():
            ids = self.model.detect_language(input_features=features[:1])
        token = self.processor.tokenizer.convert_ids_to_tokens(int(ids[0]))
        return token.strip("<|>") or None

    def _generate(
        self, chunks: list[np.ndarray], opts: TranscribeOptions, on_step, prompt: str | None = None
    ):
        """Decode 16 kHz inputs together → (``RawSegment``s by row, head captures, language).

        One input longer than 30 s goes through transformers' long-form seeking; otherwise each
        input is one window (padded to 30 s), decoded as a batch.
        """
        import torch

        from .decode import EncoderCache, decoded_segments

        fe = self.processor.feature_extractor
        long_form = len(chunks) == 1 and len(chunks[0]) > WINDOW_SAMPLES
        extra = {"truncation": False, "padding": "longest"} if long_form else {}
        feats = fe(
            chunks, sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True, **extra
        )
        features = feats.input_features.to(self.device, torch.float32)
        mask = feats.attention_mask.to(self.device)
        logprob = opts.logprob_threshold
        kwargs = {
            "return_timestamps": True,
            "return_segments": True,
            "return_dict_in_generate": True,
            "output_scores": True,
            "temperature": tuple(opts.temperatures) if len(opts.temperatures) > 1 else opts.temperatures[0],
            "compression_ratio_threshold": opts.compression_ratio_threshold,
            "logprob_threshold": logprob,
            # the no-speech rule needs the log-probability too (as in openai-whisper)
            "no_speech_threshold": opts.no_speech_threshold if logprob is not None else None,
            "condition_on_prev_tokens": bool(opts.condition_on_previous_text and long_form),
            "logits_processor": self._processors(),
            "num_beams": 1,
        }
        if prompt:
            kwargs["prompt_ids"] = self.processor.get_prompt_ids(prompt, return_tensors="pt").to(self.device)
        with EncoderCache(self.model, self.head_trained) as cache:

            def monitor(seek_max) -> None:
                seek, limit = seek_max[:, 0].tolist(), seek_max[:, 1].tolist()
                cache.seek = seek
                cache.active = [i for i in range(len(seek)) if seek[i] < limit[i]]
                on_step(sum(min(a, b) for a, b in zip(seek, limit, strict=True)) / max(1, sum(limit)))

            language = self._language(features, opts)
            if self.multilingual:
                kwargs.update(task="transcribe", language=language)
            with torch.inference_mode():
                out = self.model.generate(features, attention_mask=mask, monitor_progress=monitor, **kwargs)
            captures = cache.captures
        segments = decoded_segments(out, self._eos)
        if opts.word_timestamps:
            self._align(segments, captures, [len(c) for c in chunks], language)
        return segments, captures, language

    def _align(self, segments, captures, lengths: list[int], language: str | None) -> None:
        """Word timings for each encoder window's segments (``decode.align_words``)."""
        import torch
        from transformers.models.whisper.tokenization_whisper import LANGUAGES

        from .decode import align_words

        gc = self.model.generation_config
        sot = [int(gc.decoder_start_token_id)]
        if self.multilingual and language:
            sot += [int(gc.lang_to_id[f"<|{language}|>"]), int(gc.task_to_id["transcribe"])]
        lang_name = LANGUAGES.get(language or "en", "english")
        for row, n in enumerate(lengths):
            caps = sorted((c for c in captures if c.row == row), key=lambda c: c.offset)
            valid = math.ceil(n / SAMPLES_PER_FRAME)
            for i, cap in enumerate(caps):
                lo = cap.offset / FRAMES_PER_S
                hi = caps[i + 1].offset / FRAMES_PER_S if i + 1 < len(caps) else math.inf
                segs = [s for s in segments if s.row == row and lo - 1e-6 <= s.start < hi]
                if segs:
                    with torch.inference_mode():
                        align_words(
                            self.model,
                            cap.hidden,
                            valid - cap.offset,
                            segs,
                            sot,
                            self._eos,
                            int(gc.no_timestamps_token_id),
                            self.processor.tokenizer,
                            lang_name,
                            offset_s=lo,
                        )

    # --- the head --------------------------------------------------------------------------

    @staticmethod
    def _row_frames(captures, row: int, n_samples: int):
        """Per-frame head inputs of one decoded input, in its own time, each frame once (a
        later seek window replaces the overlapping tail of an earlier one)."""
        import torch

        caps = sorted((c for c in captures if c.row == row), key=lambda c: c.offset)
        valid = max(1, math.ceil(n_samples / SAMPLES_PER_FRAME))
        parts = []
        for i, c in enumerate(caps):
            stop = min(valid, caps[i + 1].offset if i + 1 < len(caps) else valid)
            if stop > c.offset:
                if c.frames is not None:
                    parts.append(c.frames[: stop - c.offset])
        return torch.cat(parts) if parts else None

    def _head(self, frames, start_s: float | None = None, end_s: float | None = None) -> float | None:
        """The head on the mean of ``frames`` over a span (seconds in the input's time)."""
        if frames is None:
            return None
        a = 0 if start_s is None else int(math.floor(start_s * FRAMES_PER_S))
        b = frames.shape[0] if end_s is None else int(math.ceil(end_s * FRAMES_PER_S))
        a = max(0, min(a, frames.shape[0] - 1))
        b = max(a + 1, min(b, frames.shape[0]))
        return float(self.model.head(frames[a:b].mean(dim=0)[None])[0])

    # --- a recording ----------------------------------------------------------------------

    def _clip(self, source) -> audio.AudioClip:
        if isinstance(source, audio.AudioClip):
            return source
        if isinstance(source, np.ndarray):
            return audio.as_clip(source, SAMPLE_RATE)
        return audio.load_audio(source)

    def _inputs(self, x: np.ndarray, speech: list[tuple[int, int]], opts: TranscribeOptions):
        """What to decode: packed speech windows with their time maps, or the whole recording."""
        if not opts.vad:
            return [(x, None)] if len(x) else []
        v = opts.vad_options
        pad = int(round(v.speech_pad_ms * SAMPLE_RATE / 1000))
        padded = vad.pad_regions(speech, pad, len(x))
        windows = vad.pack(padded, int(round(min(v.max_window_s, 30.0) * SAMPLE_RATE)))
        return [(w.audio(x), w.time_map(v.speech_pad_ms / 1000)) for w in windows]

    def analyze(
        self, source, progress: Progress | None = None, cancel=None, options: TranscribeOptions | None = None
    ) -> Analysis:
        """Transcribe and measure one recording (path, ``AudioClip`` or 1-D 16 kHz array).

        Raises ``AudioError`` (one line) for unusable audio and ``Cancelled`` when ``cancel``
        is set; ``progress(fraction, message)`` is called as speech detection and decoding go.
        ``options`` overrides the engine's ``TranscribeOptions`` for this call.
        """
        import torch

        opts = options or self.options
        report = progress or (lambda f, m: None)
        t_start = time.perf_counter()
        _check(cancel)
        clip = self._clip(source)
        label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else (clip.source or "<array>")
        name = Path(label).name
        x = audio.to_model_input(clip)
        t_decoded = time.perf_counter()
        _check(cancel)

        speech: list[tuple[int, int]] = []
        probs = None
        if opts.vad and len(x):
            report(0.0, f"{name}: detecting speech")
            probs = vad.speech_probabilities(
                x, progress=lambda f: report(VAD_SHARE * f, f"{name}: detecting speech"), cancel=cancel
            )
            _check(cancel)
            speech = vad.regions_from_probabilities(probs, len(x), opts.vad_options)
        t_vad = time.perf_counter()
        speech_s = [(a / SAMPLE_RATE, b / SAMPLE_RATE) for a, b in speech]
        loud = loudness.measure(clip, speech=speech_s if opts.vad else None)
        t_measured = time.perf_counter()

        inputs = self._inputs(x, speech, opts)
        total = sum(len(a) for a, _ in inputs) or 1
        done = 0
        total_s = total / SAMPLE_RATE
        start_share = VAD_SHARE if opts.vad else 0.0
        sequential = opts.condition_on_previous_text or len(inputs) == 1
        step = 1 if sequential else self.batch_size
        raw: list[tuple[float, float, object, float | None]] = []  # start, end, RawSegment, prediction
        pooled_sum, pooled_frames = None, 0
        language = None
        prompt = None
        with self._lock:
            for b0 in range(0, len(inputs), step):
                _check(cancel)
                batch = inputs[b0 : b0 + step]
                size = sum(len(a) for a, _ in batch)

                def on_step(f: float, done=done, size=size) -> None:
                    _check(cancel)
                    pos = (done + f * size) / total
                    report(
                        start_share + (1 - start_share) * pos,
                        f"{name}: {pos * total_s:.0f} of {total_s:.0f} s of speech",
                    )

                segs, captures, lang = self._generate([a for a, _ in batch], opts, on_step, prompt)
                language = language or lang
                with torch.inference_mode():
                    for row, (chunk, tmap) in enumerate(batch):
                        frames = self._row_frames(captures, row, len(chunk)) if self.head_trained else None
                        if frames is not None:
                            s = frames.sum(dim=0)
                            pooled_sum = s if pooled_sum is None else pooled_sum + s
                            pooled_frames += frames.shape[0]
                        for seg in (s for s in segs if s.row == row):
                            pred = self._head(frames, seg.start, seg.end) if frames is not None else None
                            if tmap is not None:
                                seg.start, seg.end = tmap(seg.start), tmap(seg.end, is_end=True)
                                for w in seg.words:
                                    w.start, w.end = tmap(w.start), tmap(w.end, is_end=True)
                            raw.append((seg.start, seg.end, seg, pred))
                if opts.condition_on_previous_text and segs:
                    prompt = self.processor.tokenizer.decode(segs[-1].tokens, skip_special_tokens=True)
                done += size
                report(
                    start_share + (1 - start_share) * done / total,
                    f"{name}: {done / SAMPLE_RATE:.0f} of {total_s:.0f} s",
                )

            predicted = None
            if (
                self.head_trained
                and pooled_sum is not None
                and pooled_frames * SAMPLES_PER_FRAME >= MIN_HEAD_SAMPLES
            ):
                with torch.inference_mode():
                    predicted = float(self.model.head((pooled_sum / pooled_frames)[None])[0])
        t_inferred = time.perf_counter()

        if probs is not None:
            self._snap_words(raw, probs, opts)
        segments = self._segments(clip, loud, raw)
        t_end = time.perf_counter()
        trained = self.head_trained
        if not trained:
            note = NO_HEAD_NOTE
        elif predicted is None:
            note = (
                NO_SPEECH_NOTE if opts.vad and not speech and len(x) >= MIN_HEAD_SAMPLES else TOO_SHORT_NOTE
            )
        else:
            note = None
        return Analysis(
            source=label,
            duration_s=clip.duration_s,
            sample_rate=clip.sample_rate,
            channels=clip.channels,
            text=" ".join(s.text for s in segments),
            segments=segments,
            loudness=loud,
            model=self.model_name,
            language=language or (None if self.multilingual else "en"),
            predicted_intensity=predicted if trained else None,
            intensity_target=self.intensity_target if trained else None,
            intensity_note=note,
            timings=Timings(
                decode_s=t_decoded - t_start,
                loudness_s=(t_measured - t_vad) + (t_end - t_inferred),
                inference_s=(t_inferred - t_measured) + (t_vad - t_decoded),
                total_s=t_end - t_start,
            ),
            speech=[(round(a, 3), round(b, 3)) for a, b in speech_s],
            vad=bool(opts.vad),
        )

    @staticmethod
    def _snap_words(raw, probs, opts: TranscribeOptions) -> None:
        """Word spans moved onto the pauses the VAD hears (``vad.snap_to_speech``), in place."""
        words = [w for _, _, seg, _ in raw for w in seg.words]
        threshold = max(0.05, opts.vad_options.threshold - 0.15)  # silero's own exit threshold
        for w, (s, e) in zip(
            words, vad.snap_to_speech([(w.start, w.end) for w in words], probs, threshold), strict=True
        ):
            w.start, w.end = s, e

    def _segments(self, clip: audio.AudioClip, loud, raw) -> list[Segment]:
        """Decoded segments in time order, with text, words and the measured level of each span."""
        tok = self.processor.tokenizer
        raw.sort(key=lambda r: (r[0], r[1]))
        words_all = [w for _, _, seg, _ in raw for w in seg.words]
        levels = None
        if words_all and loud.trace is not None:
            levels = loudness.span_levels(
                clip, loud.trace, np.array([w.start for w in words_all]), np.array([w.end for w in words_all])
            )
        k = 0
        segments = []
        for start, end, seg, pred in raw:
            text = tok.decode(seg.tokens, skip_special_tokens=True).strip()
            n_words = len(seg.words)
            if not text:
                k += n_words
                continue
            words = []
            for j, w in enumerate(seg.words):
                rms_w, mom_w = (levels[0][k + j], levels[1][k + j]) if levels is not None else (None, None)
                words.append(
                    Word(
                        round(w.start, 3),
                        round(w.end, 3),
                        w.text,
                        None if w.probability is None else round(w.probability, 4),
                        _finite(rms_w),
                        _finite(mom_w),
                    )
                )
            k += n_words
            if words and words[-1].end > words[0].start:  # the words' span, snapped to the speech
                start, end = words[0].start, words[-1].end
            rms, lufs = loudness.span_loudness(clip, start, end) if end > start else (None, None)
            segments.append(
                Segment(
                    round(start, 3),
                    round(end, 3),
                    text,
                    rms,
                    lufs,
                    pred,
                    words=words,
                    avg_logprob=None if seg.avg_logprob is None else round(seg.avg_logprob, 4),
                    no_speech_prob=None if seg.no_speech_prob is None else round(seg.no_speech_prob, 4),
                    temperature=seg.temperature,
                )
            )
        return segments

    def analyze_many(
        self,
        paths: Iterable,
        progress: Progress | None = None,
        cancel=None,
        options: TranscribeOptions | None = None,
    ) -> Iterator[Analysis | FileError]:
        """Each file (folders expanded) → an ``Analysis`` or a ``FileError``; never stops early
        on a bad file. ``Cancelled`` stops the batch."""
        files = audio.find_audio_files(list(paths))
        report = progress or (lambda f, m: None)
        for i, path in enumerate(files):
            _check(cancel)

            def sub(f: float, m: str, i=i) -> None:
                report((i + f) / len(files), m)

            try:
                yield self.analyze(path, progress=sub, cancel=cancel, options=options)
            except Cancelled:
                raise
            except audio.AudioError as e:
                yield FileError(str(path), str(e))
            except MemoryError:
                yield FileError(str(path), f"{path.name}: too large to analyse in memory")
            except Exception as e:  # one bad file must not stop the batch
                msg = " ".join(str(e).split()) or type(e).__name__
                yield FileError(str(path), f"{path.name}: analysis failed ({msg[:200]})")
        report(1.0, "done")


_ENGINES: dict[tuple, Engine] = {}


def get_engine(model: str = "tiny.en", device: str = "auto", compute: str = "float32") -> Engine:
    """A cached engine per (model, device, compute): the model loads once per process."""
    key = (model, device, compute)
    if key not in _ENGINES:
        _ENGINES[key] = Engine(model, device=device, compute=compute)
    return _ENGINES[key]


def analyze(
    path_or_array,
    model: str = "tiny.en",
    device: str = "auto",
    compute: str = "float32",
    progress: Progress | None = None,
    cancel=None,
) -> Analysis:
    """Analyse one recording with a cached default engine (see ``Engine.analyze``)."""
    return get_engine(model, device, compute).analyze(path_or_array, progress=progress, cancel=cancel)
