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

import contextlib
import dataclasses
import hashlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from . import audio, catalog, placement, recording, vad
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

Progress = Callable[[float, str], None]

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 30 * SAMPLE_RATE
SAMPLES_PER_FRAME = 320  # one encoder frame = one timestamp step (20 ms)
FRAMES_PER_S = SAMPLE_RATE / SAMPLES_PER_FRAME
VAD_SHARE = 0.05  # of the progress bar, for speech detection
# auto: float16 on CUDA; on the CPU float32 but for the output projection (int8_proj).
COMPUTE_TYPES = ("auto", "float32", "float16", "int8_proj", "int8")
# ct2: CTranslate2 decodes speech windows (``core.ct2``); torch: transformers does everything.
# auto: ct2 when it is installed and the model is a local folder.
BACKENDS = ("auto", "ct2", "torch")
CLIP_GAP = int(0.5 * SAMPLE_RATE)  # silence between different recordings' speech in one window
# windows per batch on a CPU. CTranslate2: 2 a stream, one thread each, beat 8 (72 short clips
# 9.5 → 8.4 s, 3 × 10 min 16.6 → 15.1 s, 85 MB less at peak; 2 was no faster on short clips);
# transformers: more only queues work on two cores
CPU_BATCH = 4
MAX_GROUP_FILES = 64  # recordings decoded together at most (their audio is held until done)


class _DropGenerateDeprecation(logging.Filter):
    """transformers 5.x logs notices from inside Whisper's own ``generate`` about flags the
    engine sets on purpose; a user would read them on every run as if something were wrong."""

    NOTICES = ("together with generation-related", "return_segments", "generation flags are not valid")
    LOGGERS = (
        "transformers.generation.utils",
        "transformers.generation.configuration_utils",
        "transformers.models.whisper.generation_whisper",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not any(n in msg for n in self.NOTICES)


class Engine:
    """Loads a model once; ``analyze`` any number of recordings with it.

    ``model``: a catalogue name (``tiny.en``, ``base``, ``small``) or a checkpoint folder.
    ``compute="int8"`` dynamically quantises the Whisper Linear layers (CPU only; the
    intensity head stays float32). ``threads`` caps torch's CPU threads (default: torch's
    choice, or ``$SPEECHINT_THREADS``). ``head`` (``core.model.load_model``'s rule): a head
    file to attach, ``None`` for the checkpoint's own trained head or else the shipped head of a
    catalogue model, ``False`` for none. ``options``: how to transcribe
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
        backend: str = "auto",
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} (use {' or '.join(BACKENDS)})")
        if compute not in COMPUTE_TYPES:
            raise ValueError(f"unknown compute type {compute!r} (use {' or '.join(COMPUTE_TYPES)})")
        self.model_name = str(model)
        self.options = options or TranscribeOptions(language=language)
        self._lock = threading.Lock()
        if os.fspath(model) not in catalog.CATALOG:  # a typo is said at once, before the imports
            catalog.model_folder(model, install=False)
        from . import ct2
        from .device import pick_device
        from .paths import THREADS_ENV

        folder = catalog.model_folder(model)
        local = Path(str(folder)).is_dir()
        if backend == "ct2" and not ct2.available():
            raise ValueError("the ct2 backend needs CTranslate2 (pip install ctranslate2)")
        if backend == "ct2" and not local:
            raise ValueError(f"{folder}: the ct2 backend needs a local model folder")
        use_ct2 = backend == "ct2" or (backend == "auto" and local and ct2.available())
        self.threads = int(threads or int(os.environ.get(THREADS_ENV, "0") or 0))
        # on CTranslate2 nothing here imports torch (over a second of start-up)
        self.device = pick_device(device, torch_free=use_ct2)
        if not use_ct2:
            self._on_torch()
        if compute == "auto":
            compute = "float16" if self.device.type == "cuda" else "int8_proj"
        if compute in ("int8", "int8_proj") and self.device.type != "cpu":
            raise ValueError("compute int8 runs on the CPU only (use --compute float16 on a GPU)")
        if compute == "float16" and self.device.type != "cuda":
            raise ValueError("compute float16 runs on a CUDA GPU only (use float32 or int8 on the CPU)")
        self.compute = compute
        report = progress or (lambda f, m: None)
        report(0.0, f"loading {self.model_name}")
        for name in _DropGenerateDeprecation.LOGGERS:
            logging.getLogger(name).addFilter(_DropGenerateDeprecation())
        head_rule = "auto" if head in (None, True) else "none" if head is False else head
        self._whisper = None
        if use_ct2:  # settings and head only; transformers' Whisper loads if ever needed
            from .head_np import load_light

            loaded = load_light(folder, model, head_rule)
            self.head = loaded.head if loaded.head_trained else None
        else:
            import torch

            from .head_np import NumpyHead
            from .model import load_model

            loaded = load_model(model, head=head_rule, dtype=torch.float32, attn_implementation="eager")
            loaded.model.eval().to(self.device)
            loaded.model.intensity_head.float()
            trained = loaded.model.head_trained
            self.head = (
                NumpyHead.from_module(loaded.model.intensity_head, loaded.model.config) if trained else None
            )
        # the checkpoint's settings (``config``, ``generation_config``): the light model on
        # CTranslate2, transformers' Whisper (with the torch head) on the torch backend
        self.model = loaded if use_ct2 else loaded.model
        self.model_path, self.head_card = loaded.path, loaded.head_card
        self._processor = None if use_ct2 else loaded.processor
        # windows decoded together: on a GPU as many as its free memory holds
        self.batch_size = int(batch_size or _auto_batch_size(self.device, self.model.config))
        self._setup_generation()
        if not use_ct2:
            self._whisper = self._prepare_whisper(self.model)
        self._ct2 = None
        if use_ct2:
            try:
                self._ct2 = self._load_ct2(report)
            except Exception as e:  # no stored form and none can be made: transformers decodes
                if backend == "ct2":
                    raise ValueError(f"CTranslate2 could not load {self.model_name}: {e}") from e
                logging.getLogger(__name__).warning("decoding on transformers: %s", e)
        self.backend = "ct2" if self._ct2 is not None else "torch"
        if self._ct2 is None and self._whisper is None:  # CTranslate2 failed: torch decodes all
            self._on_torch()
            self._whisper = self.whisper  # loaded now: decoding needs it
        report(1.0, f"{self.model_name} ready")

    def _on_torch(self) -> None:
        """Decoding on transformers: the device as torch names it, torch's thread count set."""
        import torch

        self.device = torch.device(str(self.device))
        if self.threads:
            torch.set_num_threads(self.threads)

    @property
    def whisper(self):
        """transformers' Whisper: the whole decoder on the torch backend; on ct2 loaded on first
        need (decoding without speech detection, the sampled fallback)."""
        if self._whisper is None:
            import torch

            from .model import load_model

            loaded = load_model(
                self.model_path, head="none", dtype=torch.float32, attn_implementation="eager"
            )
            self._processor = self._processor or loaded.processor
            self._whisper = self._prepare_whisper(loaded.model)
        return self._whisper

    @property
    def processor(self):
        """transformers' Whisper processor: the transformers decoder's features and tokenizer."""
        if self._processor is None:
            self.whisper  # noqa: B018  (loads it with its processor)
        return self._processor

    @property
    def tokenizer(self):
        """Token ids ↔ text: the ``tokenizers`` library on CTranslate2 (no transformers import),
        transformers' own on its decoder."""
        if self._ct2 is None:
            return self.processor.tokenizer
        if self._tokenizer is None:
            from .tokenizer import Tokenizer

            self._tokenizer = Tokenizer.from_folder(self.model_path)
        return self._tokenizer

    def _prepare_whisper(self, m):
        """Device, precision, suppressed tokens and the engine's hooks for a transformers Whisper."""
        import torch

        from .decode import install_compaction

        m.eval().to(torch.device(str(self.device)))
        if self.compute == "float16":  # Whisper in half precision; the small head stays float32
            m.half()
            m.intensity_head.float()
        if self.compute in ("int8", "int8_proj"):
            from .quant import quantize

            quantize(m, decoder_layers=self.compute == "int8")
        gc = m.generation_config
        vocab = m.config.vocab_size
        suppress = torch.zeros(vocab, dtype=torch.bool)
        begin = torch.zeros(vocab, dtype=torch.bool)
        # torch.isin (used by transformers' suppress processors) is ~100x slower multi-threaded
        # on a busy CPU; precomputed masks do the same job.
        suppress[[t for t in (gc.suppress_tokens or []) if t < vocab]] = True
        begin[[t for t in (gc.begin_suppress_tokens or []) if t < vocab]] = True
        gc.suppress_tokens = None
        gc.begin_suppress_tokens = None
        self._suppress = suppress.to(m.device)
        self._begin_suppress = (begin | suppress).to(m.device)
        install_compaction(m)
        return m

    def _load_ct2(self, report):
        """CTranslate2 for the speech windows (``core.ct2``): int8 on the CPU (float32 when
        asked), float16 on CUDA."""
        from . import ct2

        gc = self.model.generation_config
        tokens = ct2.Tokens(
            sot=int(gc.decoder_start_token_id),
            eos=self._eos,
            no_timestamps=int(gc.no_timestamps_token_id),
            timestamp_begin=self._timestamp_begin,
            prev=getattr(gc, "prev_sot_token_id", None),
            vocab_size=int(self.model.config.vocab_size),
        )
        compute = {"int8_proj": "int8"}.get(self.compute, self.compute)
        folder = ct2.stored_form(self.model_path, lambda m: report(0.5, m), ct2.quantization_for(compute))
        index = self.device.index or 0
        return ct2.Ct2Whisper(folder, self.device.type, index, compute, self.threads or _cpu_cores(), tokens)

    # --- generation set-up ----------------------------------------------------------------

    def _setup_generation(self) -> None:
        gc = self.model.generation_config
        self._timestamp_begin = int(gc.no_timestamps_token_id) + 1
        self._eos = int(gc.eos_token_id)
        self.multilingual = bool(getattr(gc, "is_multilingual", False))
        self.language = None
        self._tokenizer = None
        self._mel = None  # the feature settings, read on first use

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
        return self.head is not None

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
            ids = self.whisper.detect_language(input_features=features[:1])
        token = self.processor.tokenizer.convert_ids_to_tokens(int(ids[0]))
        return token.strip("<|>") or None

    def _generate(
        self,
        chunks: list[np.ndarray],
        opts: TranscribeOptions,
        on_step,
        prompt: str | None = None,
        flagged: set[int] | None = None,
    ):
        """Decode 16 kHz inputs together → (``RawSegment``s by row, head captures, language).

        One input longer than 30 s goes through transformers' long-form seeking; otherwise each
        input is one window (padded to 30 s), decoded as a batch. ``flagged`` collects the rows
        whose first-temperature result transformers' fallback rule rejected (compression ratio
        or log-probability; a no-speech skip is not a rejection). Sampling is seeded from the
        inputs, so a window decoded alone gets the same words in any run and any batch.
        """
        long_form = len(chunks) == 1 and len(chunks[0]) > WINDOW_SAMPLES
        if self._ct2 is not None and not long_form and opts.temperatures[0] == 0:
            return self._generate_ct2(chunks, opts, on_step, prompt, flagged)
        return self._generate_torch(chunks, opts, on_step, prompt, flagged)

    def _generate_torch(self, chunks, opts: TranscribeOptions, on_step, prompt=None, flagged=None):
        """``_generate`` on transformers (long-form seeking, the sampled fallback)."""
        import torch

        long_form = len(chunks) == 1 and len(chunks[0]) > WINDOW_SAMPLES
        whisper = self.whisper  # first: loading it draws random numbers (a fresh head's weights)
        torch.manual_seed(_seed(chunks))

        from .decode import EncoderCache, decoded_segments

        fe = self.processor.feature_extractor
        extra = {"truncation": False, "padding": "longest"} if long_form else {}
        feats = fe(
            chunks, sampling_rate=SAMPLE_RATE, return_tensors="pt", return_attention_mask=True, **extra
        )
        features = feats.input_features.to(whisper.device, whisper.dtype)
        mask = feats.attention_mask.to(whisper.device)
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
            "num_beams": opts.beam_size,
        }
        if prompt:
            kwargs["prompt_ids"] = self.processor.tokenizer.get_prompt_ids(prompt, return_tensors="pt").to(
                whisper.device
            )
        with EncoderCache(whisper, self.head_trained) as cache:

            def monitor(seek_max) -> None:
                seek, limit = seek_max[:, 0].tolist(), seek_max[:, 1].tolist()
                cache.seek = seek
                cache.active = [i for i in range(len(seek)) if seek[i] < limit[i]]
                on_step(sum(min(a, b) for a, b in zip(seek, limit, strict=True)) / max(1, sum(limit)))

            language = self._language(features, opts)
            if self.multilingual:
                kwargs.update(task="transcribe", language=language)
            with torch.inference_mode(), _first_verdicts(whisper, flagged):
                out = whisper.generate(features, attention_mask=mask, monitor_progress=monitor, **kwargs)
            captures = cache.captures
        segments = decoded_segments(out, self._eos)
        if opts.word_timestamps:
            self._align(segments, captures, [len(c) for c in chunks], language)
        return segments, captures, language

    def _generate_ct2(self, chunks, opts: TranscribeOptions, on_step, prompt, flagged):
        """``_generate`` on CTranslate2: windows of up to 30 s, encoded and decoded greedily as
        one batch (``core.ct2``); the same features and encoder states feed the head. A window
        the fallback rule rejects goes on alone through the sampled temperatures, seeded from
        its own audio, so a file's words do not depend on what it was batched with."""
        from . import ct2, mel
        from .head_np import head_inputs
        from .raw import Capture, RawSegment

        if self._mel is None:
            self._mel = mel.settings(self.model_path)
        settings = self._mel
        if opts.fit_windows:  # a batch's windows share their length (``_next_batch``)
            seconds = ct2.window_seconds(max(len(c) for c in chunks), settings.chunk_length)
            settings = dataclasses.replace(settings, chunk_length=seconds)
        features = mel.log_mel(chunks, config=settings)
        hidden = self._ct2.encode(features)
        on_step(0.3)
        language = "en" if not self.multilingual else opts.language or self._ct2.detect_language(hidden)
        sot = self._sot(language)
        prefix: list[int] = []
        if prompt and self._ct2.tok.prev is not None:
            text = self.tokenizer.encode(" " + prompt.strip(), add_special_tokens=False)
            prefix = [self._ct2.tok.prev, *text[-(ct2.MAX_LENGTH // 2 - 1) :]]
        prompts = [prefix + sot] * len(chunks)
        decoded = self._ct2.decode(hidden, prompts, opts.beam_size)
        on_step(0.6)
        for row, d in enumerate(decoded):
            if ct2.needs_fallback(d, opts):
                if flagged is not None:
                    flagged.add(row)
                if len(opts.temperatures) > 1:
                    seed = _seed([chunks[row]])
                    row_enc = self._ct2.view(hidden, [row])
                    decoded[row] = self._ct2.fallback(
                        row_enc, prompts[row], d, opts, seed, lambda: on_step(0.6)
                    )
        segments: list[RawSegment] = []
        for row, d in enumerate(decoded):
            if ct2.silent(d, opts):
                continue
            for start, end, text in ct2.segments(d.tokens, self._ct2.tok, len(chunks[row]) / SAMPLE_RATE):
                segments.append(
                    RawSegment(
                        start,
                        end,
                        text,
                        avg_logprob=d.avg_logprob,
                        no_speech_prob=d.no_speech_prob,
                        temperature=d.temperature,
                        row=row,
                    )
                )
        if opts.word_timestamps:
            self._align_ct2(segments, hidden, [len(c) for c in chunks], sot, language)
        captures = []
        for row in range(len(chunks)):
            h = hidden[row]
            frames = head_inputs(h[None], features[row : row + 1])[0] if self.head_trained else None
            captures.append(Capture(row, 0, h, frames))
        on_step(1.0)
        return segments, captures, language

    def _sot(self, language: str | None) -> list[int]:
        gc = self.model.generation_config
        sot = [int(gc.decoder_start_token_id)]
        if self.multilingual and language:
            sot += [int(gc.lang_to_id[f"<|{language}|>"]), int(gc.task_to_id["transcribe"])]
        return sot

    def _align_ct2(self, segments, hidden: np.ndarray, lengths: list[int], sot: list[int], language) -> None:
        """Word timings for each row's segments from CTranslate2's alignment (``ct2.words_for``)."""
        from . import ct2

        tokenizer = self.tokenizer

        def split(tokens):
            words, _, indices = tokenizer.words(tokens, language or "en")
            return words, indices

        # a window decoded up to the token limit (a loop kept without fallback) has no room for
        # the teacher-forced pass: its segments keep their text, without word timings
        rows, texts = [], []
        for r in sorted({s.row for s in segments}):
            text = [t for s in segments if s.row == r for t in s.tokens]
            if len(text) + len(sot) + 2 <= ct2.MAX_LENGTH:
                rows.append(r)
                texts.append(text)
        if not rows:
            return
        mel = [min(3000, math.ceil(lengths[r] / 160)) for r in rows]
        aligned = self._ct2.align(hidden, rows, sot, texts, mel)
        for r, (probs, alignment) in zip(rows, aligned, strict=True):
            ct2.words_for([s for s in segments if s.row == r], probs, alignment, split)

    def _align(self, segments, captures, lengths: list[int], language: str | None) -> None:
        """Word timings for each encoder window's segments (``decode.align_words``)."""
        import torch
        from transformers.models.whisper.tokenization_whisper import LANGUAGES

        from .decode import align_words

        gc = self.model.generation_config
        sot = self._sot(language)
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
                            self.whisper,
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
        later seek window replaces the overlapping tail of an earlier one), as float32 numpy."""
        caps = sorted((c for c in captures if c.row == row), key=lambda c: c.offset)
        valid = max(1, math.ceil(n_samples / SAMPLES_PER_FRAME))
        parts = []
        for i, c in enumerate(caps):
            stop = min(valid, caps[i + 1].offset if i + 1 < len(caps) else valid)
            if stop > c.offset:
                if c.frames is not None:
                    parts.append(_numpy(c.frames[: stop - c.offset]))
        return np.concatenate(parts) if parts else None

    def _span_head(self, frames, start_s: float | None = None, end_s: float | None = None) -> float | None:
        """The head on the mean of ``frames`` over a span (seconds in the input's time)."""
        if frames is None:
            return None
        a = 0 if start_s is None else int(math.floor(start_s * FRAMES_PER_S))
        b = frames.shape[0] if end_s is None else int(math.ceil(end_s * FRAMES_PER_S))
        a = max(0, min(a, frames.shape[0] - 1))
        b = max(a + 1, min(b, frames.shape[0]))
        return float(self.head(frames[a:b].mean(axis=0, dtype=np.float64)[None])[0])

    # --- recordings ------------------------------------------------------------------------

    def _inputs(self, items: list[Prepared]):
        """What to decode: the items' speech packed into windows (with ``pack_clips`` several
        short recordings share one), or, without speech detection, one whole recording.

        Windows are plans (``vad.Window``: pieces of the recordings), turned into samples only
        when their batch is decoded, so memory holds one batch of audio, not the recording's.
        """
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
        return [(w, w.time_map(v.speech_pad_ms / 1000)) for w in windows]

    def _decode(self, items: list[Prepared], report, cancel, after_batch=None) -> float:
        """Decode the items' speech together; each item collects its segments and head frames.
        Returns the seconds spent.

        A stretch of speech that a packed window left without a single word (Whisper sometimes
        starts a window late, skipping what came first) is decoded again on its own.
        """
        t0 = time.perf_counter()
        opts = items[0].opts
        queue = [(a, tmap, True) for a, tmap in self._inputs(items)]
        total = sum(placement.length(a) for a, _, _ in queue) or 1
        step = 1 if (opts.condition_on_previous_text or len(queue) == 1) else self.batch_size
        done, prompt, b0 = 0, None, 0
        with self._lock:
            while b0 < len(queue):
                check(cancel)
                # windows that hold several recordings are decoded greedily, in batches of their
                # own: temperature fallback reads repetition across clips (the same prompt read
                # by many speakers) as a loop; any clip that looks wrong is decoded again alone,
                # with the full fallback (``placement.redo``)
                batch = self._next_batch(queue, b0, step, opts)
                b0 += len(batch)
                shared = placement.shared(batch[0][1])
                size = sum(placement.length(a) for a, _, _ in batch)
                # batches decode greedily; a window the fallback rule rejects is decoded again
                # alone, with the whole fallback: sampling then depends on that window only, so
                # its words do not change with its batch neighbours (``_generate``'s seed)
                # (CTranslate2 does exactly that inside one call: ``_generate_ct2``)
                greedy = shared or (
                    self._ct2 is None
                    and len(batch) > 1
                    and len(opts.temperatures) > 1
                    and not opts.temperatures[0]
                )
                how = opts.with_(temperatures=(0.0,)) if greedy else opts

                def on_step(f: float, done=done, size=size, total=total) -> None:
                    check(cancel)
                    report(min(1.0, (done + f * size) / total))

                xs = [it.x for it in items]
                chunks = [a.audio(xs) if isinstance(a, vad.Window) else a for a, _, _ in batch]
                flagged: set[int] = set()
                segs, captures, lang = self._generate(chunks, how, on_step, prompt, flagged)
                if greedy and not shared:
                    # its greedy result is known (rejected, and the same alone): the rest of the
                    # fallback, from the same seed, is what the whole fallback alone would do
                    rest = opts.with_(temperatures=opts.temperatures[1:])
                    for row in sorted(flagged):
                        alone, caps, _ = self._generate([chunks[row]], rest, lambda f: check(cancel), prompt)
                        segs = [s for s in segs if s.row != row] + [
                            dataclasses.replace(s, row=row) for s in alone
                        ]
                        captures = [c for c in captures if c.row != row]
                        captures += [dataclasses.replace(c, row=row) for c in caps]
                for row, ((_, tmap, recheck), chunk) in enumerate(zip(batch, chunks, strict=True)):
                    mine = [s for s in segs if s.row == row]
                    redo, mixed = placement.redo(mine, tmap, opts) if recheck else ([], set())
                    for src in sorted({p.source for p in redo}):  # each recording on its own
                        alone = [(p.start, p.start + p.length, p.source) for p in redo if p.source == src]
                        for window in vad.pack(alone, WINDOW_SAMPLES):
                            queue.append((window, window.time_map(tmap.edge), False))
                            total += window.length
                    frames = self._row_frames(captures, row, len(chunk)) if self.head_trained else None
                    placement.pool(items, frames, tmap, skip=redo)
                    self._contour(items, frames, tmap, skip=redo)
                    for seg in mine:
                        pred = self._span_head(frames, seg.start, seg.end) if frames is not None else None
                        for k, placed in placement.place(seg, tmap, pred, self.tokenizer):
                            if k not in mixed:  # those are decoded again, alone
                                items[k].decoded.append(placed)
                                items[k].language = items[k].language or lang
                if opts.condition_on_previous_text and segs:
                    prompt = self.tokenizer.decode(segs[-1].tokens, skip_special_tokens=True)
                done += size
                report(min(1.0, done / total))
                # let go of this batch's audio, encoder states and head frames before the next
                # batch is read (they were held through its whole encoder and decoder passes)
                chunks = segs = captures = frames = None
                if after_batch is not None:
                    after_batch()
        return time.perf_counter() - t0

    def _next_batch(self, queue: list, b0: int, step: int, opts: TranscribeOptions) -> list:
        """The next batch from ``queue[b0:]``: up to ``step`` windows that share the first one's
        kind (shared by several recordings or not) and encoder length (``ct2.window_seconds``),
        moved to the front of what is left (in order), so a window is decoded the same whatever
        its neighbours in the queue; with one window per step the queue's order is kept."""
        from . import ct2

        def kind(entry) -> tuple[bool, int]:
            seconds = 30
            if opts.fit_windows and self._ct2 is not None:
                seconds = ct2.window_seconds(placement.length(entry[0]))
            return placement.shared(entry[1]), seconds

        if step == 1:
            return [queue[b0]]
        want = kind(queue[b0])
        picked = [j for j in range(b0, len(queue)) if kind(queue[j]) == want][:step]
        taken = set(picked)
        rest = [queue[j] for j in range(b0, len(queue)) if j not in taken]
        queue[b0:] = [queue[j] for j in picked] + rest
        return queue[b0 : b0 + len(picked)]

    def _contour(self, items: list[Prepared], frames, tmap, skip=()) -> None:
        """The voice-level contour points of a window's pieces, in their recordings' time."""
        if frames is None:
            return
        from .contour import contour_points

        for a, b, k, t0 in placement.frame_ranges(frames.shape[0], tmap, skip):
            items[k].contour.append(contour_points(self.head, frames, a, b, t0))

    def _finish(self, p: Prepared, inference_s: float) -> Analysis:
        predicted = None
        if (
            self.head_trained
            and p.pooled_sum is not None
            and p.pooled_frames * SAMPLES_PER_FRAME >= MIN_HEAD_SAMPLES
        ):
            predicted = float(self.head((p.pooled_sum / p.pooled_frames)[None])[0])
        language = p.language or (None if self.multilingual else "en")
        from .contour import build

        a = recording.finish(
            p,
            self.model_name,
            predicted,
            self.head_trained,
            self.intensity_target,
            language,
            inference_s,
            self.model.config.intensity_fusion_tau_db,
        )
        a.voice_contour = build(p.contour) if self.head_trained else None
        return a

    def analyze(
        self,
        source,
        progress: Progress | None = None,
        cancel=None,
        options: TranscribeOptions | None = None,
        partial: Callable[[Analysis], None] | None = None,
        tap: Callable[[np.ndarray], None] | None = None,
    ) -> Analysis:
        """Transcribe and measure one recording (path, ``AudioClip`` or 1-D 16 kHz array).

        Raises ``AudioError`` (one line) for unusable audio and ``Cancelled`` when ``cancel``
        is set; ``progress(fraction, message)`` is called as speech detection and decoding go.
        ``options`` overrides the engine's ``TranscribeOptions`` for this call. ``partial``
        gets ``recording.preview``s as the analysis goes (the loudness once the file is read,
        then the segments decoded so far after each batch), for a view that fills in; ``tap``
        every block of the original-rate audio as it is read (``recording.prepare``).
        """
        p = self.prepare(source, progress, cancel, options, tap)
        report = progress or (lambda f, m: None)
        if partial is not None:
            partial(recording.preview(p, self.model_name))
        share = VAD_SHARE if p.opts.vad else 0.0
        total_s = (sum(e - s for s, e in p.speech) if p.opts.vad else len(p.x)) / SAMPLE_RATE

        def sub(f: float) -> None:
            report(share + (1 - share) * f, f"{p.name}: {f * total_s:.0f} of {total_s:.0f} s of speech")

        after = (lambda: partial(recording.preview(p, self.model_name))) if partial is not None else None
        spent = self._decode([p], sub, cancel, after)
        return self._finish(p, spent)

    def prepare(
        self,
        source,
        progress: Progress | None = None,
        cancel=None,
        options: TranscribeOptions | None = None,
        tap: Callable[[np.ndarray], None] | None = None,
    ) -> Prepared:
        """Read one recording for decoding (``recording.prepare``: speech, loudness, the 16 kHz
        copy); ``progress`` goes up to ``VAD_SHARE``. ``decode_group`` finishes it, alone or
        with others."""
        opts = options or self.options
        return recording.prepare(source, opts, progress, cancel, VAD_SHARE, tap)

    def groups(self, options: TranscribeOptions | None = None) -> bool:
        """Whether recordings analysed with ``options`` may be decoded together: they need
        speech detection (the packed windows), and a prompt carried from window to window
        would cross from one recording into the next."""
        opts = options or self.options
        return opts.vad and not opts.condition_on_previous_text

    def group_full(self, items: list[Prepared]) -> bool:
        """Whether a group of prepared recordings is ready to decode: about a batch of windows of
        speech (enough to fill the batches; more only delays the first results and holds more
        audio), or ``MAX_GROUP_FILES`` recordings."""
        if len(items) >= MAX_GROUP_FILES:
            return True
        speech = sum(sum(e - s for s, e in p.speech) for p in items)
        return speech >= self.batch_size * WINDOW_SAMPLES

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
        pending: list[Prepared | FileError] = []
        first = 0

        def flush() -> Iterator[Analysis | FileError]:
            count = len(pending)

            def sub(f: float, m: str, first=first) -> None:
                report((first + VAD_SHARE + (count - VAD_SHARE) * f) / n, m)

            yield from self.decode_group(pending, sub, cancel)

        for i, path in enumerate(files):
            check(cancel)
            try:
                item = self.prepare(path, lambda f, m, i=i: report((i + f) / n, m), cancel, opts)
            except Cancelled:
                raise
            except Exception as e:  # one bad file must not stop the batch
                item = _file_error(path, e)
            pending.append(item)
            prepared = [p for p in pending if isinstance(p, Prepared)]
            if not self.groups(opts) or self.group_full(prepared) or len(pending) >= MAX_GROUP_FILES:
                yield from flush()
                pending, first = [], i + 1
        yield from flush()
        report(1.0, "done")

    def decode_group(
        self, pending: list[Prepared | FileError], progress: Progress | None = None, cancel=None
    ) -> Iterator[Analysis | FileError]:
        """Decode prepared recordings together and yield their results in order (a
        ``FileError`` in ``pending`` passes through in its place). ``progress(f, message)``: the
        fraction of the group's decoding. A failure is isolated: the group is decoded again one
        recording at a time, so only the file that fails becomes a ``FileError``."""
        report = progress or (lambda f, m: None)
        items = [p for p in pending if isinstance(p, Prepared)]
        if not pending:
            return
        names = items[0].name if len(items) == 1 else f"{len(items)} files"
        spent = {}
        if items:
            try:
                total = self._decode(items, lambda f: report(f, f"{names}: transcribing"), cancel)
                speech = [max(1, sum(e - s for s, e in p.speech)) for p in items]
                spent = {id(p): total * w / sum(speech) for p, w in zip(items, speech, strict=True)}
            except Cancelled:
                raise
            except Exception:  # isolate the file that fails: decode each on its own
                for p in items:
                    p.forget_decoding()
                    try:
                        spent[id(p)] = self._decode([p], lambda f: None, cancel)
                    except Cancelled:
                        raise
                    except Exception as e:
                        spent[id(p)] = e
        for item in pending:
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


def _seed(chunks: list[np.ndarray]) -> int:
    """A seed for sampling that depends on the audio decoded, and on nothing else."""
    h = hashlib.blake2b(digest_size=8)
    for c in chunks:
        h.update(np.ascontiguousarray(c, dtype=np.float32).tobytes())
    return int.from_bytes(h.digest(), "little") & (2**63 - 1)


@contextlib.contextmanager
def _first_verdicts(model, flagged: set[int] | None):
    """Record in ``flagged`` the batch rows whose first-temperature result transformers'
    ``_need_fallback`` rejects (windows of up to 30 s: one seek step, so its index is the row)."""
    if flagged is None:
        yield
        return
    import inspect

    judge = model._need_fallback
    params = inspect.signature(judge)

    def need_fallback(*args, **kwargs):
        verdict = judge(*args, **kwargs)
        call = params.bind(*args, **kwargs).arguments
        if verdict[0] and not call.get("temperature"):
            flagged.add(int(call["index"]))
        return verdict

    model._need_fallback = need_fallback  # over ``decode.install_compaction``'s, put back after
    try:
        yield
    finally:
        model._need_fallback = judge


def _numpy(x) -> np.ndarray:
    """Head frames as float32 numpy (the transformers decoder captures torch tensors)."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32, copy=False)
    return x.detach().float().cpu().numpy()


def _cpu_cores() -> int:
    """CPU threads for CTranslate2: the cores this process may use (what torch would take)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _auto_batch_size(device, config) -> int:
    """Windows per batch: 4 on a CPU (more only queues work on two cores); on CUDA as many as
    about half the free memory holds, at a generous ~40 kB per encoder frame and layer."""
    if device.type != "cuda":
        return CPU_BATCH
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
