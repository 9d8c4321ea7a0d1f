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

from . import audio, recording, vad
from .options import TranscribeOptions
from .recording import (  # noqa: F401  (re-exported: the public names callers use)
    MIN_HEAD_SAMPLES,
    NO_HEAD_NOTE,
    NO_SPEECH_NOTE,
    TOO_SHORT_NOTE,
    Cancelled,
    Decoded,
    Prepared,
    check,
)
from .results import Analysis, FileError

# OpenMP threads that spin while waiting make torch several times slower whenever the CPU is
# shared (measured here: RTF 0.88 → 0.12 on 2 busy cores). Only effective if set before torch
# loads, so the CLI and the app import this module (or set it) first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

Progress = Callable[[float, str], None]

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 30 * SAMPLE_RATE
SAMPLES_PER_FRAME = 320  # one encoder frame = one timestamp step (20 ms)
FRAMES_PER_S = SAMPLE_RATE / SAMPLES_PER_FRAME
VAD_SHARE = 0.05  # of the progress bar, for speech detection
COMPUTE_TYPES = ("auto", "float32", "float16", "int8")  # auto: float16 on CUDA, float32 on CPU
CLIP_GAP = int(0.5 * SAMPLE_RATE)  # silence between different recordings' speech in one window
MAX_GROUP_FILES = 64  # recordings decoded together at most (their audio is held until done)
MIN_RETRY_S = 1.0  # a packed piece (padding included) this long that got no words is decoded alone


class _DropGenerateDeprecation(logging.Filter):
    """transformers 5.x logs deprecation notices from inside Whisper's own ``generate``."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return "together with generation-related" not in msg and "return_segments" not in msg


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
        compute: str = "auto",
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
        if compute == "auto":
            compute = "float16" if self.device.type == "cuda" else "float32"
        if compute == "int8" and self.device.type != "cpu":
            raise ValueError("compute int8 runs on the CPU only (use --compute float16 on a GPU)")
        if compute == "float16" and self.device.type != "cuda":
            raise ValueError("compute float16 runs on a CUDA GPU only (use float32 or int8 on the CPU)")
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
        if compute == "float16":  # Whisper in half precision; the small head stays float32
            m.half()
            m.intensity_head.float()
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
        # windows decoded together: on a GPU as many as its free memory holds
        self.batch_size = int(batch_size or _auto_batch_size(self.device, m.config))
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
        features = feats.input_features.to(self.device, self.model.dtype)
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

    # --- recordings ------------------------------------------------------------------------

    def _inputs(self, items: list[Prepared]):
        """What to decode: the items' speech packed into windows (with ``pack_clips`` several
        short recordings share one), or, without speech detection, one whole recording."""
        opts = items[0].opts
        if not opts.vad:
            (p,) = items
            return [(p.x, None)] if len(p.x) else []
        v = opts.vad_options
        pad = int(round(v.speech_pad_ms * SAMPLE_RATE / 1000))
        size = int(round(min(v.max_window_s, 30.0) * SAMPLE_RATE))
        regions = [
            [(s, e, k) for s, e in vad.pad_regions(p.speech, pad, len(p.x))] for k, p in enumerate(items)
        ]
        if opts.pack_clips:  # recordings share windows
            windows = vad.pack([r for rs in regions for r in rs], size, gap=CLIP_GAP)
        else:  # each recording its own windows (still decoded in batches across recordings)
            windows = [w for rs in regions for w in vad.pack(rs, size)]
        xs = [p.x for p in items]
        return [(w.audio(xs), w.time_map(v.speech_pad_ms / 1000)) for w in windows]

    def _decode(self, items: list[Prepared], report, cancel) -> float:
        """Decode the items' speech together; each item collects its segments and head frames.
        Returns the seconds spent.

        A stretch of speech that a packed window left without a single word (Whisper sometimes
        starts a window late, skipping what came first) is decoded again on its own.
        """
        import torch

        t0 = time.perf_counter()
        opts = items[0].opts
        queue = [(a, tmap, True) for a, tmap in self._inputs(items)]
        total = sum(len(a) for a, _, _ in queue) or 1
        step = 1 if (opts.condition_on_previous_text or len(queue) == 1) else self.batch_size
        done, prompt, b0 = 0, None, 0
        with self._lock:
            while b0 < len(queue):
                check(cancel)
                # windows that hold several recordings are decoded greedily, in batches of their
                # own: temperature fallback reads repetition across clips (the same prompt read
                # by many speakers) as a loop; any clip that looks wrong is decoded again alone,
                # with the full fallback (``_redo``)
                shared = _shared(queue[b0][1])
                batch = []
                while b0 < len(queue) and len(batch) < step and _shared(queue[b0][1]) == shared:
                    batch.append(queue[b0])
                    b0 += 1
                size = sum(len(a) for a, _, _ in batch)
                how = opts.with_(temperatures=(0.0,)) if shared else opts

                def on_step(f: float, done=done, size=size, total=total) -> None:
                    check(cancel)
                    report(min(1.0, (done + f * size) / total))

                segs, captures, lang = self._generate([a for a, _, _ in batch], how, on_step, prompt)
                with torch.inference_mode():
                    for row, (chunk, tmap, recheck) in enumerate(batch):
                        mine = [s for s in segs if s.row == row]
                        redo, mixed = self._redo(mine, tmap, opts) if recheck else ([], set())
                        for src in sorted({p.source for p in redo}):  # each recording on its own
                            alone = [(p.start, p.start + p.length, p.source) for p in redo if p.source == src]
                            for window in vad.pack(alone, WINDOW_SAMPLES):
                                queue.append(
                                    (window.audio([it.x for it in items]), window.time_map(tmap.edge), False)
                                )
                                total += window.length
                        frames = self._row_frames(captures, row, len(chunk)) if self.head_trained else None
                        self._pool(items, frames, tmap, skip=redo)
                        self._contour(items, frames, tmap, skip=redo)
                        for seg in mine:
                            pred = self._head(frames, seg.start, seg.end) if frames is not None else None
                            for k, placed in self._place(seg, tmap, pred):
                                if k not in mixed:  # those are decoded again, alone
                                    items[k].decoded.append(placed)
                                    items[k].language = items[k].language or lang
                if opts.condition_on_previous_text and segs:
                    prompt = self.processor.tokenizer.decode(segs[-1].tokens, skip_special_tokens=True)
                done += size
                report(min(1.0, done / total))
        return time.perf_counter() - t0

    def _redo(self, segs, tmap, opts: TranscribeOptions) -> tuple[list, set[int]]:
        """Pieces of a packed window to decode again on their own: speech left without a word,
        and every piece of recordings the window could not keep apart (a segment across the
        words of one segment aligned into two recordings, or a segment the fallback's
        repetition rule would have decoded again)."""
        lost = self._uncovered(segs, tmap)
        if tmap is None or len({p.source for p in tmap.pieces}) < 2:
            return lost, set()
        mixed: set[int] = set()
        for seg in segs:
            # where the words are heard (alignment); Whisper's own segment timestamps are coarse
            # (tiny.en rounds them to whole seconds) and only decide when there are no words
            if seg.words:
                heard = {tmap.pieces[tmap.piece((w.start + w.end) / 2)].source for w in seg.words}
            else:
                first, last = tmap.piece(seg.start), tmap.piece(seg.end, is_end=True)
                heard = {tmap.pieces[i].source for i in range(first, max(first, last) + 1)}
            if len(heard) > 1 or _doubtful(seg, opts):
                mixed |= heard
        return [p for p in tmap.pieces if p.source in mixed or any(p is q for q in lost)], mixed

    @staticmethod
    def _uncovered(segs, tmap) -> list:
        """Pieces of a packed window (of at least ``MIN_RETRY_S``) that no decoded word, or no
        segment when words are off, falls in."""
        if tmap is None or len(tmap.pieces) < 2:
            return []
        covered = set()
        for seg in segs:
            if seg.words:
                covered.update(tmap.piece((w.start + w.end) / 2) for w in seg.words)
            else:
                covered.update(range(tmap.piece(seg.start), tmap.piece(seg.end, is_end=True) + 1))
        return [
            p for i, p in enumerate(tmap.pieces) if i not in covered and p.length >= MIN_RETRY_S * SAMPLE_RATE
        ]

    @staticmethod
    def _pool(items: list[Prepared], frames, tmap, skip=()) -> None:
        """Add a window's head frames to the sums of the recordings its pieces come from
        (``skip``: pieces decoded again alone, which pool there)."""
        if frames is None:
            return
        if tmap is None:
            pieces = [(0, frames.shape[0], 0)]
        else:
            pieces = [
                (
                    p.offset // SAMPLES_PER_FRAME,
                    math.ceil((p.offset + p.length) / SAMPLES_PER_FRAME),
                    p.source,
                )
                for p in tmap.pieces
                if not any(p is q for q in skip)
            ]
        for a, b, k in pieces:
            part = frames[a : min(b, frames.shape[0])]
            if part.shape[0]:
                s = part.sum(dim=0)
                items[k].pooled_sum = s if items[k].pooled_sum is None else items[k].pooled_sum + s
                items[k].pooled_frames += part.shape[0]

    def _contour(self, items: list[Prepared], frames, tmap, skip=()) -> None:
        """The voice-level contour points of a window's pieces, in their recordings' time."""
        if frames is None:
            return
        from .contour import contour_points

        if tmap is None:
            pieces = [(0, frames.shape[0], 0, 0.0)]
        else:
            pieces = [
                (
                    p.offset // SAMPLES_PER_FRAME,
                    math.ceil((p.offset + p.length) / SAMPLES_PER_FRAME),
                    p.source,
                    (p.start - p.offset % SAMPLES_PER_FRAME) / SAMPLE_RATE,
                )
                for p in tmap.pieces
                if not any(p is q for q in skip)
            ]
        for a, b, k, t0 in pieces:
            items[k].contour.append(contour_points(self.model.head, frames, a, b, t0))

    def _place(self, seg, tmap, pred) -> list[tuple[int, Decoded]]:
        """A segment in window time → its recording(s) and their times.

        Each word belongs to the piece under its middle; a segment whose words come from two
        recordings (short clips packed together) is split between them.
        """
        tok = self.processor.tokenizer
        extra = {
            "avg_logprob": seg.avg_logprob,
            "no_speech_prob": seg.no_speech_prob,
            "temperature": seg.temperature,
        }
        if tmap is None:
            text = tok.decode(seg.tokens, skip_special_tokens=True).strip()
            return [(0, Decoded(seg.start, seg.end, text, seg.words, pred, **extra))]
        if not seg.words:
            i = tmap.piece(seg.start)
            j = tmap.piece(seg.end, is_end=True)
            src = tmap.pieces[i].source
            while j > i and tmap.pieces[j].source != src:
                j -= 1
            text = tok.decode(seg.tokens, skip_special_tokens=True).strip()
            return [
                (
                    src,
                    Decoded(
                        tmap.in_piece(seg.start, i),
                        tmap.in_piece(seg.end, max(i, j)),
                        text,
                        [],
                        pred,
                        **extra,
                    ),
                )
            ]
        heard = [tmap.piece((w.start + w.end) / 2) for w in seg.words]
        if len({tmap.pieces[i].source for i in heard}) == 1:  # one recording: its pieces only
            pieces = heard
        else:  # (a window decoded with no second chance) cut at the silence between them
            pieces = tmap.assign([(w.start, w.end) for w in seg.words], seg.start, seg.end)
        runs: list[tuple[int, list]] = []
        for w, i in zip(seg.words, pieces, strict=True):
            w.start, w.end = tmap.in_piece(w.start, i), tmap.in_piece(w.end, i)
            src = tmap.pieces[i].source
            if runs and runs[-1][0] == src:
                runs[-1][1].append(w)
            else:
                runs.append((src, [w]))
        if len(runs) == 1:
            text = tok.decode(seg.tokens, skip_special_tokens=True).strip()
            src, words = runs[0]
            return [(src, Decoded(words[0].start, words[-1].end, text, words, pred, **extra))]
        return [
            (src, Decoded(ws[0].start, ws[-1].end, "".join(w.text for w in ws).strip(), ws, pred, **extra))
            for src, ws in runs
        ]

    def _finish(self, p: Prepared, inference_s: float) -> Analysis:
        import torch

        predicted = None
        if (
            self.head_trained
            and p.pooled_sum is not None
            and p.pooled_frames * SAMPLES_PER_FRAME >= MIN_HEAD_SAMPLES
        ):
            with torch.inference_mode():
                predicted = float(self.model.head((p.pooled_sum / p.pooled_frames)[None])[0])
        language = p.language or (None if self.multilingual else "en")
        from .contour import build

        a = recording.finish(
            p, self.model_name, predicted, self.head_trained, self.intensity_target, language, inference_s
        )
        a.voice_contour = build(p.contour) if self.head_trained else None
        return a

    def analyze(
        self, source, progress: Progress | None = None, cancel=None, options: TranscribeOptions | None = None
    ) -> Analysis:
        """Transcribe and measure one recording (path, ``AudioClip`` or 1-D 16 kHz array).

        Raises ``AudioError`` (one line) for unusable audio and ``Cancelled`` when ``cancel``
        is set; ``progress(fraction, message)`` is called as speech detection and decoding go.
        ``options`` overrides the engine's ``TranscribeOptions`` for this call.
        """
        opts = options or self.options
        report = progress or (lambda f, m: None)
        p = recording.prepare(source, opts, report, cancel, VAD_SHARE)
        share = VAD_SHARE if opts.vad else 0.0
        total_s = (sum(e - s for s, e in p.speech) if opts.vad else len(p.x)) / SAMPLE_RATE

        def sub(f: float) -> None:
            report(share + (1 - share) * f, f"{p.name}: {f * total_s:.0f} of {total_s:.0f} s of speech")

        spent = self._decode([p], sub, cancel)
        return self._finish(p, spent)

    def analyze_many(
        self,
        paths: Iterable,
        progress: Progress | None = None,
        cancel=None,
        options: TranscribeOptions | None = None,
    ) -> Iterator[Analysis | FileError]:
        """Each file (folders expanded) → an ``Analysis`` or a ``FileError``, in input order;
        never stops early on a bad file. ``Cancelled`` stops the batch.

        With speech detection, the speech of consecutive files is decoded together (short clips
        share windows, windows share batches) in groups of about ``batch_size`` windows; each
        group's results are yielded as soon as it is decoded.
        """
        opts = options or self.options
        files = audio.find_audio_files(list(paths))
        report = progress or (lambda f, m: None)
        n = max(1, len(files))
        together = opts.vad and not opts.condition_on_previous_text
        limit = self.batch_size * WINDOW_SAMPLES
        pending: list[tuple[int, Prepared | FileError]] = []
        speech = 0
        for i, path in enumerate(files):
            check(cancel)
            try:
                item = recording.prepare(
                    path, opts, lambda f, m, i=i: report((i + VAD_SHARE * f) / n, m), cancel
                )
            except Cancelled:
                raise
            except Exception as e:  # one bad file must not stop the batch
                item = _file_error(path, e)
            pending.append((i, item))
            if isinstance(item, Prepared):
                speech += sum(e - s for s, e in item.speech) if opts.vad else limit
            if not together or speech >= limit or len(pending) >= MAX_GROUP_FILES:
                yield from self._flush(pending, n, report, cancel)
                pending, speech = [], 0
        yield from self._flush(pending, n, report, cancel)
        report(1.0, "done")

    def _flush(self, pending, n: int, report, cancel) -> Iterator[Analysis | FileError]:
        """Decode a group of prepared files together and yield their results in order."""
        items = [p for _, p in pending if isinstance(p, Prepared)]
        if not pending:
            return
        first, count = pending[0][0], len(pending)
        names = items[0].name if len(items) == 1 else f"{len(items)} files"

        def sub(f: float) -> None:
            report((first + VAD_SHARE + (count - VAD_SHARE) * f) / n, f"{names}: transcribing")

        spent = {}
        if items:
            try:
                total = self._decode(items, sub, cancel)
                speech = [max(1, sum(e - s for s, e in p.speech)) for p in items]
                spent = {id(p): total * w / sum(speech) for p, w in zip(items, speech, strict=True)}
            except Cancelled:
                raise
            except Exception:  # isolate the file that fails: decode each on its own
                for p in items:
                    p.decoded, p.pooled_sum, p.pooled_frames = [], None, 0
                    try:
                        spent[id(p)] = self._decode([p], lambda f: None, cancel)
                    except Cancelled:
                        raise
                    except Exception as e:
                        spent[id(p)] = e
        for _, item in pending:
            if isinstance(item, FileError):
                yield item
                continue
            took = spent.get(id(item), 0.0)
            if isinstance(took, Exception):
                yield _file_error(item.label, took)
                continue
            try:
                yield self._finish(item, took)
            except Cancelled:
                raise
            except Exception as e:
                yield _file_error(item.label, e)


def _shared(tmap) -> bool:
    """Whether a window holds the speech of more than one recording."""
    return tmap is not None and len({p.source for p in tmap.pieces}) > 1


def _doubtful(seg, opts: TranscribeOptions) -> bool:
    """openai-whisper's repetition rule applied to one segment (greedy decoding of a shared
    window skips the fallback; improbable text alone is left as is: hard speech stays hard when
    decoded alone, measured on 47 short clips)."""
    import zlib

    if opts.compression_ratio_threshold is not None and len(seg.tokens) > 8:
        raw = b"".join(t.to_bytes(2, "little") for t in seg.tokens)
        if len(raw) / len(zlib.compress(raw)) > opts.compression_ratio_threshold:
            return True
    return False


def _auto_batch_size(device, config) -> int:
    """Windows per batch: 4 on a CPU (more only queues work on two cores); on CUDA as many as
    about half the free memory holds, at a generous ~40 kB per encoder frame and layer."""
    if device.type != "cuda":
        return 4
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    per_window = 1500 * 40_000 * max(1, config.encoder_layers + config.decoder_layers) // 4
    return int(max(8, min(128, free // 2 // per_window)))


def _file_error(path, e: Exception) -> FileError:
    name = Path(str(path)).name
    if isinstance(e, audio.AudioError):
        return FileError(str(path), str(e))
    if isinstance(e, MemoryError):
        return FileError(str(path), f"{name}: too large to analyse in memory")
    msg = " ".join(str(e).split()) or type(e).__name__
    return FileError(str(path), f"{name}: analysis failed ({msg[:200]})")


_ENGINES: dict[tuple, Engine] = {}


def get_engine(model: str = "tiny.en", device: str = "auto", compute: str = "auto") -> Engine:
    """A cached engine per (model, device, compute): the model loads once per process."""
    key = (model, device, compute)
    if key not in _ENGINES:
        _ENGINES[key] = Engine(model, device=device, compute=compute)
    return _ENGINES[key]


def analyze(
    path_or_array,
    model: str = "tiny.en",
    device: str = "auto",
    compute: str = "auto",
    progress: Progress | None = None,
    cancel=None,
) -> Analysis:
    """Analyse one recording with a cached default engine (see ``Engine.analyze``)."""
    return get_engine(model, device, compute).analyze(path_or_array, progress=progress, cancel=cancel)
