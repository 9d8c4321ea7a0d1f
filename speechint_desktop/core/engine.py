"""One pass over a recording: transcript with timestamps, measured loudness, predicted intensity.

Audio is walked in 30 s windows as openai-whisper does: each window's log-mel features go
through the encoder once, and the same encoder states feed both the decoder (greedy, with
timestamps) and the intensity head. When a window ends mid-segment, the next window starts at
the last complete timestamp, so long recordings come out as one ordered list of segments.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import audio, loudness
from .results import Analysis, FileError, Segment, Timings

# OpenMP threads that spin while waiting make torch several times slower whenever the CPU is
# shared (measured here: RTF 0.88 → 0.12 on 2 busy cores). Only effective if set before torch
# loads, so the CLI and the app import this module (or set it) first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

Progress = Callable[[float, str], None]

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 30 * SAMPLE_RATE
SAMPLES_PER_FRAME = 320  # one encoder frame = one timestamp step (20 ms)
NO_HEAD_NOTE = "no trained intensity head for this model"
TOO_SHORT_NOTE = "too short to predict intensity"
MIN_HEAD_SAMPLES = 1600  # 0.1 s at 16 kHz: fewer than 5 encoder frames say nothing about level
COMPUTE_TYPES = ("float32", "int8")


class Cancelled(Exception):
    """The user cancelled; raised between windows, so no half result is returned."""


class _DropGenerateDeprecation(logging.Filter):
    """transformers 5.x logs a deprecation notice from inside Whisper's own ``generate``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "together with generation-related" not in record.getMessage()


@dataclass
class _Window:
    """What one 30 s window contributed."""

    segments: list[tuple[float, float, list[int]]]  # start, end (s, absolute), text tokens
    advance: int  # samples consumed
    language: str | None


def _check(cancel) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


class Engine:
    """Loads a model once; ``analyze`` any number of recordings with it.

    ``model``: a catalogue name (``tiny.en``, ``base``, ``small``) or a checkpoint folder.
    ``compute="int8"`` dynamically quantises the Whisper Linear layers (CPU only; the
    intensity head stays float32). ``threads`` caps torch's CPU threads (default: torch's
    choice, or ``$SPEECHINT_THREADS``). ``head``: a head file to attach, ``None`` to use the
    shipped head for a catalogue model, ``False`` for none.
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
    ):
        import torch
        import transformers
        from transformers import WhisperProcessor

        from . import catalog
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
            m = WhisperForASRAndIntensity.from_pretrained(path, dtype=torch.float32)
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

    # --- one window -----------------------------------------------------------------------

    def _encode(self, chunk: np.ndarray):
        """One encoder pass → (hidden for the decoder, per-frame head inputs or None)."""
        import torch

        from .model import head_inputs

        feats = self.processor.feature_extractor(chunk, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.inference_mode():
            x = feats.input_features.to(self.device, torch.float32)
            hidden = self.model.model.encoder(x).last_hidden_state
            return hidden, (head_inputs(hidden, x) if self.head_trained else None)

    def _decode(self, hidden) -> list[int]:
        import torch
        from transformers.modeling_outputs import BaseModelOutput

        kwargs = {}
        if self.multilingual:
            kwargs["task"] = "transcribe"
            if self.language:
                kwargs["language"] = self.language
        with torch.inference_mode():
            out = self.model.generate(
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
                return_timestamps=True,
                force_unique_generate_call=True,
                do_sample=False,
                num_beams=1,
                logits_processor=self._processors(),
                **kwargs,
            )
        seq = out if isinstance(out, torch.Tensor) else out["sequences"]
        return [int(t) for t in seq[0].tolist()]

    def _split(self, tokens: list[int], offset_s: float, n_samples: int) -> _Window:
        """Tokens of one window → segments and how far to seek (openai-whisper's rules)."""
        tb = self._timestamp_begin
        language = None
        # the prompt: <|startoftranscript|> [<|lang|> <|task|>] ; the answer starts at the first timestamp
        first_ts = next((i for i, t in enumerate(tokens) if t >= tb), None)
        if self.multilingual:
            names = self.processor.tokenizer.convert_ids_to_tokens(tokens[: first_ts or 4])
            langs = [
                n[2:-2] for n in names if n.startswith("<|") and 2 <= len(n) - 4 <= 3 and n[2:-2].isalpha()
            ]
            language = langs[0] if langs else None
        if first_ts is None:
            return _Window([], n_samples, language)
        body = [t for t in tokens[first_ts:] if t != self._eos]
        window_s = n_samples / SAMPLE_RATE
        is_ts = [t >= tb for t in body]
        single_ending = len(body) >= 2 and is_ts[-1] and not is_ts[-2]
        cuts = [i + 1 for i in range(len(body) - 1) if is_ts[i] and is_ts[i + 1]]
        segments: list[tuple[float, float, list[int]]] = []

        def ts(tok: int) -> float:
            return (tok - tb) * SAMPLES_PER_FRAME / SAMPLE_RATE

        if cuts:
            slices = list(cuts)
            if single_ending:
                slices.append(len(body))
            last = 0
            for cut in slices:
                part = body[last:cut]
                last = cut
                text = [t for t in part if t < tb]
                stamps = [t for t in part if t >= tb]
                if len(stamps) >= 1 and text:
                    segments.append((ts(stamps[0]), ts(stamps[-1]), text))
            if single_ending:
                advance = n_samples
            else:
                advance = (body[cuts[-1] - 1] - tb) * SAMPLES_PER_FRAME
        else:
            stamps = [t for t in body if t >= tb]
            text = [t for t in body if t < tb]
            end = ts(stamps[-1]) if len(stamps) > 1 else window_s
            if text:
                segments.append((ts(stamps[0]) if stamps else 0.0, end, text))
            advance = n_samples
        if advance <= 0:
            advance = n_samples  # never loop on the same window
        advance = min(advance, n_samples)
        fixed = []
        for start, end, text in segments:
            start = min(max(0.0, start), window_s)
            end = min(max(start, end), window_s)
            fixed.append((offset_s + start, offset_s + end, text))
        return _Window(fixed, advance, language)

    # --- a recording ----------------------------------------------------------------------

    def _clip(self, source) -> audio.AudioClip:
        if isinstance(source, audio.AudioClip):
            return source
        if isinstance(source, np.ndarray):
            return audio.as_clip(source, SAMPLE_RATE)
        return audio.load_audio(source)

    def analyze(self, source, progress: Progress | None = None, cancel=None) -> Analysis:
        """Transcribe and measure one recording (path, ``AudioClip`` or 1-D 16 kHz array).

        Raises ``AudioError`` (one line) for unusable audio and ``Cancelled`` when ``cancel``
        is set; ``progress(fraction, message)`` is called after each 30 s window.
        """
        import torch

        report = progress or (lambda f, m: None)
        t_start = time.perf_counter()
        _check(cancel)
        clip = self._clip(source)
        label = os.fspath(source) if isinstance(source, (str, os.PathLike)) else (clip.source or "<array>")
        name = Path(label).name
        x = audio.to_model_input(clip)
        t_decoded = time.perf_counter()
        _check(cancel)
        loud = loudness.measure(clip)
        t_measured = time.perf_counter()

        n = len(x)
        total_s = n / SAMPLE_RATE
        report(0.0, f"{name}: transcribing")
        raw: list[tuple[float, float, list[int]]] = []
        pooled_sum = None
        pooled_frames = 0
        seg_hidden: list[tuple[float, float, object]] = []  # (window start s, window end s, hidden)
        language = None
        seek = 0
        with self._lock:
            while seek < n:
                _check(cancel)
                chunk = x[seek : seek + WINDOW_SAMPLES]
                hidden, frame_inputs = self._encode(chunk)
                window = self._split(self._decode(hidden), seek / SAMPLE_RATE, len(chunk))
                language = language or window.language
                raw.extend(window.segments)
                if frame_inputs is not None:
                    frames = max(1, min(hidden.shape[1], math.ceil(window.advance / SAMPLES_PER_FRAME)))
                    s = frame_inputs[0, :frames].sum(dim=0)
                    pooled_sum = s if pooled_sum is None else pooled_sum + s
                    pooled_frames += frames
                    seg_hidden.append((seek / SAMPLE_RATE, (seek + len(chunk)) / SAMPLE_RATE, frame_inputs))
                seek += window.advance
                report(
                    min(1.0, seek / max(1, n)), f"{name}: {min(seek, n) / SAMPLE_RATE:.0f} of {total_s:.0f} s"
                )

            predicted = None
            seg_pred: list[float | None] = [None] * len(raw)
            if self.head_trained and pooled_sum is not None and n >= MIN_HEAD_SAMPLES:
                with torch.inference_mode():
                    predicted = float(self.model.head((pooled_sum / pooled_frames)[None])[0])
                    for i, (start, end, _) in enumerate(raw):
                        seg_pred[i] = self._segment_prediction(seg_hidden, start, end)
        t_inferred = time.perf_counter()

        tok = self.processor.tokenizer
        segments = []
        for (start, end, tokens), pred in zip(raw, seg_pred, strict=True):
            text = tok.decode(tokens, skip_special_tokens=True).strip()
            if not text:
                continue
            rms, lufs = loudness.span_loudness(clip, start, end) if end > start else (None, None)
            segments.append(Segment(round(start, 3), round(end, 3), text, rms, lufs, pred))
        t_end = time.perf_counter()
        trained = self.head_trained
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
            intensity_note=NO_HEAD_NOTE if not trained else (TOO_SHORT_NOTE if predicted is None else None),
            timings=Timings(
                decode_s=t_decoded - t_start,
                loudness_s=(t_measured - t_decoded) + (t_end - t_inferred),
                inference_s=t_inferred - t_measured,
                total_s=t_end - t_start,
            ),
        )

    def _segment_prediction(self, seg_hidden, start: float, end: float) -> float | None:
        """Head on the encoder frames of the segment's span, in the window that decoded it."""
        for w_start, w_end, hidden in reversed(seg_hidden):
            if w_start <= start + 1e-6 and start < w_end:
                a = int(math.floor((start - w_start) * SAMPLE_RATE / SAMPLES_PER_FRAME))
                b = int(math.ceil((min(end, w_end) - w_start) * SAMPLE_RATE / SAMPLES_PER_FRAME))
                a = max(0, min(a, hidden.shape[1] - 1))
                b = max(a + 1, min(b, hidden.shape[1]))
                pooled = hidden[0, a:b].mean(dim=0)
                return float(self.model.head(pooled[None])[0])
        return None

    def analyze_many(
        self, paths: Iterable, progress: Progress | None = None, cancel=None
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
                yield self.analyze(path, progress=sub, cancel=cancel)
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
