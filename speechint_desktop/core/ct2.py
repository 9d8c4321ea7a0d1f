"""Whisper on CTranslate2: the engine's fast path for speech windows of up to 30 s.

Why: on these 2 CPU cores CTranslate2's C++ decoding loop takes ~2.4x fewer seconds per token
than transformers' ``generate`` (int8 weights, quantised once when stored, loaded in ~0.3 s),
and it batches windows on a GPU in float16. What else Whisper's robust decoding needs, this
module adds in openai-whisper's terms, each rule small: the temperature fallback (compression
ratio and log-probability as transformers computes them; sampling reproducible per window), the
no-speech skip, timestamp tokens → segments, and word timings from CTranslate2's own
cross-attention DTW (``align``).

The encoder runs once per window; its states (float32 on the CPU) also feed the intensity head,
so the head and the decoder still share one encoder pass. Anything this path does not cover (no
speech detection: openai's seeking over the whole recording; a hub id with no local folder)
stays on transformers (``decode``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .options import TranscribeOptions
from .paths import release_freed_memory
from .raw import RawSegment, place_words

FORM_VERSION = 4  # bump when the stored form changes, so old conversions are not reused
FRAMES_PER_S = 50  # encoder frames (timestamp steps) per second
MEL_PER_S = 100
MAX_LENGTH = 448
CPU_ENCODE_ROWS = 2  # windows in the encoder at once on a CPU, both streams together (``encode``)
CPU_STREAMS = 2  # batches decoded side by side on a CPU (``Ct2Whisper``)
CPU_ALIGN_ROWS = 1  # windows per alignment call on a CPU, each stream (``align``)
FIT_MARGIN_S = 2  # silence after a short window's speech, at least, in its encoder input
FIT_STEP_S = 10  # encoder input lengths: 10, 20 or 30 s (``window_seconds``)


def available() -> bool:
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return False
    return True


def window_seconds(samples: int, full: int = 30, sample_rate: int = 16000) -> int:
    """Seconds of encoder input for a window of ``samples``: the speech plus at least
    ``FIT_MARGIN_S`` of silence, rounded up to 10, 20 or ``full`` (30) s.

    CTranslate2's encoder takes any length up to 30 s, so a short clip alone need not pay for
    30 s. Whisper also read short clips better with less padding, down to about 8 s (beam 5,
    each of 72 short clips alone: WER 13.2 % at 30 s, 12.1 % at 20 s, 11.0 % at 10 s, 10.4 %
    at 8 s), but worse when cut to its speech plus 2 s (clips of 3 s in 5 s inputs: "ask not"
    read "AS NOT!"). Three lengths keep batches full (a batch holds one length; the engine
    groups windows so, ``Engine._next_batch``); full windows of long recordings stay 30 s."""
    need = samples / sample_rate + FIT_MARGIN_S
    return int(min(full, FIT_STEP_S * max(1, math.ceil(need / FIT_STEP_S))))


# --- the stored form ------------------------------------------------------------------------


def _key(folder: Path) -> str:
    """Changes whenever the checkpoint's weights or settings do (size and mtime of the weights,
    the bytes of the small files), so a retrained checkpoint in the same folder is converted again."""
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{FORM_VERSION}|{folder.resolve()}".encode())
    for name in ("model.safetensors", "pytorch_model.bin"):
        f = folder / name
        if f.is_file():
            st = f.stat()
            h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}".encode())
    for name in ("config.json", "generation_config.json", "tokenizer.json"):
        f = folder / name
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


# Forms by the weights' precision: int8 for the CPU (loaded as stored: quantising a float16 form
# at every start took 0.7-1.1 s of the start-up, the int8 form loads in 0.3-0.5 s), float16 for
# a GPU and for float32 on the CPU (float16 widens losslessly; int8 would not).
QUANTIZATIONS = ("int8", "float16")
BESIDE = {"float16": "ct2", "int8": "ct2-int8"}  # written beside a catalogue model (and bundled)
VERSION_FILE = "speechint-form.json"


def quantization_for(compute_type: str) -> str:
    """The stored weights a CTranslate2 compute type loads fastest and without loss."""
    return "int8" if compute_type.startswith("int8") else "float16"


def write_beside(folder: str | os.PathLike, quantization: str = "int8") -> Path:
    """Convert a freshly installed model into ``folder/ct2-int8`` (the CPU default's form; the
    catalogue and the app bundle ship it, so a first analysis starts at once)."""
    from .fsutil import atomic_dir

    dest = Path(folder) / BESIDE[quantization]
    with atomic_dir(dest) as tmp:
        _convert(Path(folder), tmp, quantization)
        (tmp / VERSION_FILE).write_text(
            json.dumps({"form_version": FORM_VERSION, "quantization": quantization})
        )
    return dest


def _current_beside(folder: Path, quantization: str) -> bool:
    where = folder / BESIDE[quantization]
    try:
        info = json.loads((where / VERSION_FILE).read_text())
    except (OSError, ValueError):
        return False
    stored = info.get("quantization", "float16")  # forms written before int8 ones were float16
    return (
        info.get("form_version") == FORM_VERSION
        and stored == quantization
        and (where / "model.bin").is_file()
    )


def stored_form(
    folder: str | os.PathLike, progress: Callable[[str], None] | None = None, quantization: str = "float16"
) -> Path:
    """The checkpoint's CTranslate2 form (weights in ``quantization``, tokenizer): the one written
    beside it at install, else one converted once and kept under the data folder, so later starts
    load it directly. The conversion needs torch and transformers (a few seconds, once per
    checkpoint and precision); it is atomic and locked, so two processes never see half a model."""
    from filelock import FileLock

    from .fsutil import atomic_dir
    from .paths import data_dir

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown stored precision {quantization!r} (use {' or '.join(QUANTIZATIONS)})")
    folder = Path(folder)
    if _current_beside(folder, quantization):
        return folder / BESIDE[quantization]
    suffix = "" if quantization == "float16" else f"-{quantization}"
    dest = data_dir() / "ct2" / f"{folder.name}-{_key(folder)}{suffix}"
    if (dest / "model.bin").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest) + ".lock"):
        if (dest / "model.bin").is_file():
            return dest
        if progress:
            progress("preparing the fast decoder (once per model)")
        with atomic_dir(dest) as tmp:
            _convert(folder, tmp, quantization)
    return dest


def _convert(folder: Path, out: Path, quantization: str = "float16") -> None:
    """transformers checkpoint → CTranslate2, through the library's own converter. The
    converter picks its loader by the config's architecture, so a SpeechInt checkpoint is shown
    to it as the plain Whisper it is (the intensity head stays in the checkpoint)."""
    import tempfile

    import ctranslate2

    with tempfile.TemporaryDirectory(prefix="speechint-ct2-") as src:
        for f in folder.iterdir():
            if f.is_file() and f.name != "config.json":  # (a form's folder beside it is not a file)
                os.symlink(f.resolve(), Path(src) / f.name)
        config = json.loads((folder / "config.json").read_text())
        config["architectures"] = ["WhisperForConditionalGeneration"]
        (Path(src) / "config.json").write_text(json.dumps(config))
        files = [n for n in ("tokenizer.json", "preprocessor_config.json") if (folder / n).is_file()]
        converter = ctranslate2.converters.TransformersConverter(
            src, copy_files=files, load_as_float16=quantization == "float16"
        )
        if quantization == "int8" and not _keep_convolutions_float(converter):
            quantization = "float16"  # quantised at load instead, as before: slower, the same words
        converter.convert(str(out), quantization=quantization, force=True)
    _fit_alignment_heads(out / "config.json", config)


def _keep_convolutions_float(converter) -> bool:
    """Make ``converter`` leave the encoder's two input convolutions unquantised.

    The converter's int8 quantises them too, while CTranslate2 quantising a float16 model at load
    (what faster-whisper does) leaves them float: measured on tiny.en, int8 convolutions moved
    the encoder states by up to 8.7 and cost 0.5-1.4 WER points; without them the stored int8
    form gives exactly the states and words of the float16 form loaded as int8 (test). Uses
    the converter's ``_load`` hook (no public one); False, with a warning, if it has changed.
    """
    load = getattr(converter, "_load", None)
    if load is None:
        logging.getLogger(__name__).warning("CTranslate2's converter changed: int8 form not stored")
        return False

    def load_keeping_convolutions():
        spec = load()
        convs = [getattr(getattr(spec, "encoder", None), n, None) for n in ("conv1", "conv2")]
        if all(hasattr(c, "weight_scale") for c in convs):
            for conv in convs:
                del conv.weight_scale  # no scale to fill: the weight is not quantised
        else:
            logging.getLogger(__name__).warning("CTranslate2's Whisper spec changed: convolutions quantised")
        return spec

    converter._load = load_keeping_convolutions
    return True


def _fit_alignment_heads(path: Path, config: dict) -> None:
    """A checkpoint can carry another size's alignment heads (a small model made from a larger
    one's generation config): CTranslate2 reads past its layers on them (a crash, measured).
    Keep those that exist; none left → openai-whisper's default, every head of the upper half."""
    ct2_config = json.loads(path.read_text())
    layers, heads = int(config["decoder_layers"]), int(config["decoder_attention_heads"])
    kept = [[a, b] for a, b in ct2_config.get("alignment_heads") or [] if a < layers and b < heads]
    if not kept:
        kept = [[a, b] for a in range(layers // 2, layers) for b in range(heads)]
    ct2_config["alignment_heads"] = kept
    path.write_text(json.dumps(ct2_config, indent=2))


# --- decoding -------------------------------------------------------------------------------


@dataclass
class Tokens:
    """The special token ids decoding needs (from the checkpoint's generation config)."""

    sot: int
    eos: int
    no_timestamps: int
    timestamp_begin: int
    prev: int | None  # <|startofprev|>, for a text prompt
    vocab_size: int


@dataclass
class Decoded:
    """One window's greedy decoding: tokens as generated (timestamps included, no eos)."""

    tokens: list[int]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float


def compression_ratio(tokens: list[int], vocab_size: int) -> float:
    """transformers' Whisper rule (token bytes, not text): the thresholds were measured with it."""
    if not tokens:
        return 0.0
    width = int(math.log2(vocab_size) / 8) + 1
    raw = b"".join(t.to_bytes(width, "little") for t in tokens)
    return len(raw) / len(zlib.compress(raw))


def needs_fallback(d: Decoded, opts: TranscribeOptions) -> bool:
    """openai-whisper's rule: repetition or improbable text, unless the window is silence."""
    lp = opts.logprob_threshold
    if silent(d, opts):
        return False
    if (
        opts.compression_ratio_threshold is not None
        and d.compression_ratio > opts.compression_ratio_threshold
    ):
        return True
    return lp is not None and d.avg_logprob < lp


def silent(d: Decoded, opts: TranscribeOptions) -> bool:
    """The no-speech skip: the model says no speech and the text is improbable too."""
    lp, ns = opts.logprob_threshold, opts.no_speech_threshold
    return lp is not None and ns is not None and d.no_speech_prob > ns and d.avg_logprob < lp


class Ct2Whisper:
    """A loaded CTranslate2 Whisper: encode windows, decode them (greedily, or sampled
    reproducibly for the fallback), align words.

    On a CPU a batch runs as two streams, each half of its windows on its own model replica
    (CTranslate2 shares the weights; the GIL is released inside each call): tiny.en's small
    matrices keep two cores busier as two half batches than as one split inside each
    operation (measured on 2 cores, 8 windows: encode 2.3 → 1.7 s, greedy decoding 2.5 → 1.7 s).
    Each replica has half the threads (one each on two cores): a lone window then runs on one
    core, which for tiny.en is still faster than two threads synchronising over its small
    matrices (36 clips one by one: 5.8 → 4.1 s). Rows are independent, so the halves give the
    same words as one batch (test)."""

    def __init__(
        self, folder: Path, device: str, device_index: int, compute_type: str, threads: int, tokens: Tokens
    ):
        import ctranslate2

        self.ct2 = ctranslate2
        self.streams = CPU_STREAMS if device == "cpu" and threads > 1 else 1
        self._load = {
            "model_path": str(folder),
            "device": device,
            "device_index": device_index,
            "compute_type": compute_type,
            # each replica its share of the threads: every thread on each replica put 4 threads
            # on 2 cores (72 short clips 11.4 → 9.2 s, 2 × 10 min 12.9 → 10.7 s with one each)
            "intra_threads": max(1, threads // self.streams),
        }
        self.model = ctranslate2.models.Whisper(**self._load, inter_threads=self.streams)
        self._pool = None
        self.device = device
        self.tok = tokens

    def _halves(self, fn, n: int) -> list:
        """``fn(lo, hi)`` (a list per row) over rows ``0..n``, the halves side by side on a CPU;
        then the step's freed scratch memory goes back to the system (``release_freed_memory``)."""
        try:
            if self.streams < 2 or n < 2:
                return fn(0, n)
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="ct2-stream")
            mid = (n + 1) // 2
            second = self._pool.submit(fn, mid, n)
            first = fn(0, mid)
            return first + second.result()
        finally:
            if self.device == "cpu":
                release_freed_memory()

    def view(self, hidden: np.ndarray, rows: list[int] | None = None):
        """Encoder states (all rows, or ``rows``) as the StorageView decoding takes."""
        part = hidden if rows is None else hidden[rows]
        return self.ct2.StorageView.from_array(np.ascontiguousarray(part))

    def encode(self, features: np.ndarray) -> np.ndarray:
        """(B, n_mels, 3000) float32 → float32 encoder states (B, 1500, d), for decoding and the head.

        On a CPU at most ``CPU_ENCODE_ROWS`` windows are in the encoder at once (both streams
        together): its self-attention holds batch × heads × 1500² scores (432 MB for 8 tiny.en
        windows), and one window per stream was also the fastest (8 windows: 1.6 s against
        1.7 s for two per stream); the decoder still gets the whole batch."""
        step = max(1, CPU_ENCODE_ROWS // self.streams) if self.device == "cpu" else max(1, len(features))

        def run(lo: int, hi: int) -> list:
            out = []
            for i in range(lo, hi, step):
                chunk = np.ascontiguousarray(features[i : min(hi, i + step)], dtype=np.float32)
                states = np.array(self.model.encode(self.ct2.StorageView.from_array(chunk), to_cpu=True))
                out.extend(states.astype(np.float32, copy=False))
            return out

        return np.stack(self._halves(run, len(features)))

    def detect_language(self, hidden: np.ndarray) -> str | None:
        found = self.model.detect_language(self.view(hidden))
        return found[0][0][0].strip("<|>") if found and found[0] else None

    def decode(self, hidden: np.ndarray, prompts: list[list[int]], beam_size: int = 1) -> list[Decoded]:
        """All windows' temperature-0 pass as one batch (greedy, or ``beam_size`` beams), with
        what the fallback rule reads."""

        def run(lo: int, hi: int) -> list[Decoded]:
            view = self.view(hidden[lo:hi])
            rows = self._generate(self.model, view, prompts[lo:hi], beam_size=beam_size)
            return [self._decoded(r, 0.0) for r in rows]

        return self._halves(run, len(prompts))

    def sample(self, enc_row, prompt: list[int], temperature: float, seed: int) -> Decoded:
        """One window sampled at ``temperature``, the same in every run and batch.

        CTranslate2's sampler is per worker thread and seeded when the thread first samples, so
        ``set_random_seed`` reaches only a model's new threads: each sampled decode runs on a
        fresh instance (~0.2 s on a CPU; rejected windows are rare), never on one whose threads
        already sampled for another window."""
        self.ct2.set_random_seed(int(seed) % (2**31 - 1))
        fresh = self.ct2.models.Whisper(**self._load)  # one replica: it samples one window
        try:
            (r,) = self._generate(
                fresh, enc_row, [prompt], beam_size=1, sampling_topk=0, sampling_temperature=temperature
            )
        finally:
            del fresh
        return self._decoded(r, temperature)

    @staticmethod
    def _generate(model, enc, prompts, **kw):
        return model.generate(
            enc,
            prompts,
            return_scores=True,
            return_no_speech_prob=True,
            max_length=MAX_LENGTH,
            suppress_blank=True,
            suppress_tokens=[-1],
            max_initial_timestamp_index=50,
            **kw,
        )

    def _decoded(self, r, temperature: float) -> Decoded:
        tokens = [t for t in r.sequences_ids[0] if t != self.tok.eos]
        n = len(tokens)
        avg = float(r.scores[0]) * n / (n + 1) if r.scores else -math.inf  # eos counts (openai)
        ratio = compression_ratio(tokens, self.tok.vocab_size)
        return Decoded(tokens, avg, float(r.no_speech_prob), temperature, ratio)

    def fallback(
        self, enc_row, prompt: list[int], first: Decoded, opts: TranscribeOptions, seed: int, check=None
    ):
        """openai-whisper's temperature fallback for a window ``first`` (its greedy result)
        failed: sampled at each next temperature until a result passes. If none does, the most
        probable one without repetition is kept (faster-whisper's choice)."""
        tried = [first]
        for i, t in enumerate(opts.temperatures[1:], start=1):
            if check:
                check()
            d = self.sample(enc_row, prompt, t, seed + 7919 * i)
            tried.append(d)
            if not needs_fallback(d, opts):
                return d
        limit = opts.compression_ratio_threshold
        ok = [d for d in tried if limit is None or d.compression_ratio <= limit] or tried
        return max(ok, key=lambda d: d.avg_logprob)

    def align(
        self,
        hidden: np.ndarray,
        rows: list[int],
        sot: list[int],
        texts: list[list[int]],
        mel_frames: list[int],
    ):
        """CTranslate2's alignment of ``texts`` to the encoder states' ``rows`` (cross-attention
        of the alignment heads, median filter, DTW): per row, (token probabilities,
        [(text index, frame index)]).

        On a CPU each stream aligns one window per call: two windows in one call peaked ~280 MB
        above the rest of an analysis (the largest transient of a long run) and were slower
        (an hour's 32 calls: 5.0 s against 3.8 s one by one)."""
        step = CPU_ALIGN_ROWS if self.device == "cpu" else max(1, len(rows))

        def run(lo: int, hi: int) -> list:
            out = []
            for i in range(lo, hi, step):
                j = min(hi, i + step)
                res = self.model.align(
                    self.view(hidden, rows[i:j]), sot, texts[i:j], mel_frames[i:j], median_filter_width=7
                )
                out.extend((list(r.text_token_probs), list(r.alignments)) for r in res)
            return out

        return self._halves(run, len(rows))


def segments(tokens: list[int], tok: Tokens, duration_s: float) -> list[tuple[float, float, list[int]]]:
    """Timestamp tokens → (start, end, text tokens) per segment, openai-whisper's slicing: a
    segment between each pair of consecutive timestamps; text with no closing timestamp ends
    at the last timestamp seen or at the window's end."""
    tb = tok.timestamp_begin
    out: list[tuple[float, float, list[int]]] = []
    start: float | None = None
    text: list[int] = []
    last_ts = None
    for t in tokens:
        if t >= tb:
            ts = (t - tb) / FRAMES_PER_S
            if start is None:
                start = ts
            elif text:
                out.append((start, max(ts, start), text))
                text, start = [], None
            else:
                start = ts  # a closing pair's second timestamp opens the next segment
            last_ts = ts
        elif t < tok.eos:
            if start is None:
                start = 0.0 if not out else out[-1][1]
            text.append(t)
    if text:
        end = last_ts if last_ts is not None and start is not None and last_ts > start else duration_s
        out.append((start or 0.0, max(end, start or 0.0), text))
    return out


def words_for(
    segs: list[RawSegment],
    probs: list[float],
    alignment: list[tuple[int, int]],
    split: Callable[[list[int]], tuple[list[str], list[list[int]]]],
    offset_s: float = 0.0,
) -> None:
    """Word timings (in place) from one window's alignment of its segments' text, as
    ``decode.align_words`` does for transformers: each token starts where the DTW path first
    reaches its row; words are kept inside their segment's own timestamps."""
    if not alignment:
        return
    text_idx = np.array([a for a, _ in alignment])
    time_idx = np.array([b for _, b in alignment])
    jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
    jump_s = time_idx[jumps] / FRAMES_PER_S + offset_s
    place_words(segs, jump_s, probs, split)
    k = 0
    for seg in segs:
        lp = [math.log(max(probs[k + i], 1e-12)) for i in range(len(seg.tokens)) if k + i < len(probs)]
        if lp:
            seg.avg_logprob = float(np.mean(lp))
        k += len(seg.tokens)
