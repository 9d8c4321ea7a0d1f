"""The intensity head and what it reads, with torch only (no transformers).

The head reads the encoder's last hidden state together with the level of the log-mel frames
the encoder was fed, mean-pooled over the frames that hold audio only (``core.model`` says why).
Kept apart from the Whisper model so that the engine on CTranslate2 can load and run the head
without importing transformers' Whisper (seconds of start-up): ``IntensityModel`` is the head
with its settings, and ``WhisperForASRAndIntensity`` shares the same methods.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = 320  # 10 ms hop x 2 (the encoder's stride-2 convolution): 50 frames/s
MAX_FRAMES = 1500  # one 30 s window

INTENSITY_DEFAULTS: dict[str, object] = {
    "intensity_target": "rms_dbfs",
    "intensity_mean": -30.0,
    "intensity_std": 10.0,
    "intensity_head_trained": False,
    "intensity_hidden": 256,
    "intensity_level_stats": 0,  # N_STATS: the head also reads the frames' generalised-mean levels
    "intensity_fusion_tau_db": None,  # voice heads: how far head and P.56 may disagree (core.voice)
}
TARGETS = ("rms_dbfs", "lufs", "voice_asl_dbfs", "voice_rms_dbfs")  # voice_*: the clean voice under noise
_HEAD_PREFIX = "intensity_head."
HEAD_FORMAT = "speechint-intensity-head/2"  # /1 read the encoder state only
# Per encoder frame, the frame's total power p raised to these powers (0: log10 p): pooled, they
# are generalised means of the frames' power — low powers follow the quiet frames (the noise
# floor), high powers the loud ones (the voice) — and every one shifts by exactly the gain.
STAT_POWERS = (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0)
N_STATS = len(STAT_POWERS)


def encoder_frames_for(num_samples: int, sr: int = SAMPLE_RATE) -> int:
    """Encoder frames holding audio for a clip of ``num_samples`` at ``sr`` (clipped to [1, 1500])."""
    n16 = num_samples * SAMPLE_RATE / sr
    return int(min(MAX_FRAMES, max(1, math.ceil(n16 / SAMPLES_PER_FRAME - 1e-9))))


def apply_intensity_defaults(config):
    """Fill the intensity fields a plain Whisper config lacks (in place)."""
    for key, value in INTENSITY_DEFAULTS.items():
        if not hasattr(config, key) or getattr(config, key) is None:
            setattr(config, key, value)
    if config.intensity_target not in TARGETS:
        raise ValueError(f"intensity_target must be one of {TARGETS}, not {config.intensity_target!r}")
    return config


def pool_encoder(hidden: torch.Tensor, encoder_frames=None) -> torch.Tensor:
    """Mean of ``hidden`` (batch, frames, d_model) over the first ``encoder_frames`` frames.

    ``encoder_frames`` is an int, a sequence/tensor with one count per batch item, or None
    (all frames). Padding frames beyond the count never influence the result.
    """
    b, t, _ = hidden.shape
    if encoder_frames is None:
        return hidden.mean(dim=1)
    frames = torch.as_tensor(encoder_frames, device=hidden.device).reshape(-1)
    if frames.numel() == 1 and b > 1:
        frames = frames.expand(b)
    frames = frames.clamp(1, t)
    mask = torch.arange(t, device=hidden.device)[None, :] < frames[:, None]
    mask = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(dim=1) / frames.to(hidden.dtype)[:, None]


def level_frames(input_features: torch.Tensor) -> torch.Tensor:
    """Per encoder frame: mean power and mean log-mel of its two mel frames, then the frame's
    total power raised to ``STAT_POWERS`` — (batch, T, 2 * n_mels + N_STATS).

    Whisper's features are ``(log10(power) + 4) / 4``; averaging power (not its log) keeps the
    pooled value an energy, so it tracks RMS and LUFS whatever the span's silences.
    """
    b, n_mels, t = input_features.shape
    x = input_features[:, :, : t - t % 2].float().reshape(b, n_mels, -1, 2)
    power = torch.pow(10.0, 4.0 * x - 4.0).mean(-1)
    log_mean = x.mean(-1)
    total = power.sum(1).clamp_min(1e-10).double()  # (batch, T)
    stats = [torch.log10(total) if k == 0 else total.pow(k) for k in STAT_POWERS]
    stats = torch.stack(stats, dim=1).clamp(max=1e30).float()
    return torch.cat([power, log_mean, stats], dim=1).transpose(1, 2)


def head_inputs(hidden: torch.Tensor, input_features: torch.Tensor) -> torch.Tensor:
    """What the head pools: the encoder's hidden state beside the level of its input frames."""
    level = level_frames(input_features)[:, : hidden.shape[1]].to(hidden.dtype)
    return torch.cat([hidden, level], dim=-1)


def stat_levels(pooled_stats: torch.Tensor) -> torch.Tensor:
    """Pooled ``STAT_POWERS`` statistics → levels in log10 power: ``log10(mean p^k) / k`` (the
    mean of ``log10 p`` for k = 0)."""
    out = []
    for i, k in enumerate(STAT_POWERS):
        v = pooled_stats[..., i]
        out.append(v if k == 0 else torch.log10(v.clamp_min(1e-30)) / k)
    return torch.stack(out, dim=-1)


class IntensityHead(nn.Module):
    """Pooled (encoder state, mel level) → standardised intensity.

    The encoder part goes through LayerNorm → Linear; the level part (log of the pooled band
    powers, and the pooled log-mel) skips the norm, which would remove the very offset a gain
    adds, and also feeds a linear path straight to the output.
    """

    def __init__(self, d_model: int, hidden: int, n_mels: int = 80, n_stats: int = 0):
        super().__init__()
        self.d_model, self.n_mels, self.n_stats = d_model, n_mels, n_stats
        self.norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc_level = nn.Linear(2 * n_mels + n_stats, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, 1)
        self.skip = nn.Linear(2 * n_mels + n_stats, 1)

    def level(self, pooled: torch.Tensor) -> torch.Tensor:
        """The level part of the pooled inputs as the head reads it: log band power, mean log-mel
        and (``n_stats``) the generalised-mean frame levels, all as ``(log10 + 4) / 4``."""
        d, m = self.d_model, self.n_mels
        if pooled.shape[-1] != d + 2 * m + N_STATS:
            raise ValueError(
                f"intensity head expects {d + 2 * m + N_STATS} pooled features, got {pooled.shape[-1]}"
            )
        power, log_mean = pooled[..., d : d + m], pooled[..., d + m : d + 2 * m]
        parts = [(torch.log10(power.clamp_min(1e-10)) + 4.0) / 4.0, log_mean]
        if self.n_stats:
            parts.append((stat_levels(pooled[..., d + 2 * m :]) + 4.0) / 4.0)
        return torch.cat(parts, dim=-1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        level = self.level(pooled)
        h = self.act(self.fc1(self.norm(pooled[..., : self.d_model])) + self.fc_level(level))
        return (self.fc2(h) + self.skip(level)).squeeze(-1)


class IntensityMethods:
    """The head's use, for any object with ``config`` (intensity settings) and ``intensity_head``."""

    @property
    def head_trained(self) -> bool:
        return bool(self.config.intensity_head_trained)

    def standardize(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw - float(self.config.intensity_mean)) / float(self.config.intensity_std)

    def unstandardize(self, z: torch.Tensor) -> torch.Tensor:
        return z * float(self.config.intensity_std) + float(self.config.intensity_mean)

    def head(self, pooled: torch.Tensor, standardized: bool = False) -> torch.Tensor:
        """Head on pooled ``head_inputs`` (batch, d_model + 2·n_mels + N_STATS) → (batch,), raw dB unless
        ``standardized``."""
        z = self.intensity_head(pooled.to(self.intensity_head.fc1.weight.dtype))
        return z if standardized else self.unstandardize(z)


class IntensityModel(IntensityMethods, nn.Module):
    """The head alone with its settings: what the engine needs beside a CTranslate2 Whisper."""

    def __init__(self, config):
        super().__init__()
        self.config = apply_intensity_defaults(config)
        self.intensity_head = IntensityHead(
            config.d_model,
            int(config.intensity_hidden),
            config.num_mel_bins,
            int(config.intensity_level_stats),
        )


def load_own_head(model, weights: Path) -> bool:
    """A trained checkpoint's own head weights (``intensity_head.*`` in its safetensors)."""
    from safetensors import safe_open

    if not weights.is_file():
        return False
    with safe_open(str(weights), framework="pt") as f:
        state = {k[len(_HEAD_PREFIX) :]: f.get_tensor(k) for k in f.keys() if k.startswith(_HEAD_PREFIX)}
    if not state:
        return False
    model.intensity_head.load_state_dict(state, strict=True)
    return True


def read_head_card(path) -> dict:
    """The head's metadata (settings + card) without loading it."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    meta["card"] = json.loads(meta.get("card") or "{}")
    return meta


def load_head(model, path) -> dict:
    """Attach a saved head; sets the intensity settings and ``intensity_head_trained=True``.

    Raises ValueError (one line) when the file is not a head for this model's width.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k[len(_HEAD_PREFIX) :]: f.get_tensor(k) for k in f.keys() if k.startswith(_HEAD_PREFIX)}
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path.name}: not a readable intensity head ({e})") from None
    if not state or "d_model" not in meta:
        raise ValueError(f"{path.name}: not a SpeechInt intensity head")
    if meta.get("format") != HEAD_FORMAT:
        raise ValueError(
            f"{path.name}: an intensity head of an older format ({meta.get('format')}); retrain it"
        )
    if int(meta["d_model"]) != model.config.d_model:
        raise ValueError(
            f"{path.name}: head is for a model of width {meta['d_model']}, this model has {model.config.d_model}"
        )
    target = meta.get("intensity_target", "rms_dbfs")
    if target not in TARGETS:
        raise ValueError(f"{path.name}: unknown intensity target {target!r}")
    hidden = int(meta.get("intensity_hidden", state["fc1.weight"].shape[0]))
    n_stats = int(meta.get("level_stats", 0))  # heads before the voice-level ones: none
    ref = model.intensity_head.fc1.weight
    if hidden != model.intensity_head.fc1.out_features or n_stats != model.intensity_head.n_stats:
        model.intensity_head = IntensityHead(model.config.d_model, hidden, model.config.num_mel_bins, n_stats)
    model.intensity_head.load_state_dict(state, strict=True)
    model.intensity_head.to(device=ref.device, dtype=ref.dtype)
    model.config.intensity_target = target
    model.config.intensity_mean = float(meta.get("intensity_mean", -30.0))
    model.config.intensity_std = float(meta.get("intensity_std", 10.0))
    model.config.intensity_hidden = hidden
    model.config.intensity_level_stats = n_stats
    tau = meta.get("fusion_tau_db")
    model.config.intensity_fusion_tau_db = float(tau) if tau else None
    model.config.intensity_head_trained = True
    return {**meta, "card": json.loads(meta.get("card") or "{}")}


# --- one rule for which head a model gets ------------------------------------------------


@dataclass
class LoadedModel:
    """What ``load_model`` gives: the model (head attached), its processor, where they came from."""

    model: IntensityModel  # or core.model.WhisperForASRAndIntensity: the same head methods
    processor: object  # transformers.WhisperProcessor, or ``Processor`` (its two parts)
    path: str  # the folder (or hub id) the weights came from
    head_file: Path | None = None  # the head attached from a file, if one was
    head_card: dict | None = None  # that head's metadata and card
    head_note: str = ""  # why a shipped head was not used ("" when it was, or none was looked for)


def shipped_head(name_or_path, folder: str | None = None) -> Path | None:
    """The head shipped for a catalogue model, named by its catalogue name or by its folder."""
    from . import catalog

    text = os.fspath(name_or_path)
    if text in catalog.CATALOG:
        return catalog.head_path(text)
    where = Path(folder or text).expanduser()
    if not where.is_dir():
        return None
    for name in catalog.CATALOG:
        if where.resolve() == catalog.model_path(name).resolve():
            return catalog.head_path(name)
    return None


def attach_head(loaded: LoadedModel, name_or_path, head) -> None:
    """The head rule of ``core.model.load_model`` (its docstring), applied to ``loaded.model``."""
    model = loaded.model
    if head in (None, "none", False):
        return
    if head in ("auto", True):
        shipped = None if model.head_trained else shipped_head(name_or_path, loaded.path)
        if shipped is not None:
            try:
                loaded.head_card, loaded.head_file = load_head(model, shipped), shipped
            except ValueError as e:
                loaded.head_note = str(e)
                logging.getLogger(__name__).warning("intensity head not used: %s", e)
        return
    head_file = Path(os.fspath(head)).expanduser()
    if not head_file.is_file():
        raise ValueError(f"{head_file}: no such head file")
    loaded.head_card, loaded.head_file = load_head(model, head_file), head_file


@dataclass
class Processor:
    """transformers' ``WhisperProcessor`` is its feature extractor and tokenizer; importing the
    class itself costs ~1.7 s more than its two parts (transformers' processing machinery)."""

    feature_extractor: object
    tokenizer: object


def load_light(folder: str, name_or_path=None, head="auto") -> LoadedModel:
    """The settings, the processor and the head of a local checkpoint, without Whisper's weights
    (the engine's CTranslate2 path decodes with its own copy). Same head rule as ``load_model``."""
    import transformers
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperTokenizerFast

    tlog = transformers.utils.logging
    verbosity = tlog.get_verbosity()
    tlog.set_verbosity_error()
    try:
        config = WhisperConfig.from_pretrained(folder)
        processor = Processor(
            WhisperFeatureExtractor.from_pretrained(folder), WhisperTokenizerFast.from_pretrained(folder)
        )
        generation = GenerationConfig.from_pretrained(folder)
    finally:
        tlog.set_verbosity(verbosity)
    model = IntensityModel(config)
    model.generation_config = generation
    if model.head_trained and not load_own_head(model, Path(folder) / "model.safetensors"):
        model.config.intensity_head_trained = False  # says trained, holds no head: measured only
    loaded = LoadedModel(model.eval(), processor, str(folder))
    attach_head(loaded, name_or_path if name_or_path is not None else folder, head)
    return loaded
