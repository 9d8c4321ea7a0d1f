"""The intensity head as a torch module: what training fits and the transformers backend runs.

The head reads the encoder's last hidden state together with the level of the log-mel frames
the encoder was fed, mean-pooled over the frames that hold audio only (``core.model`` says why).
Its constants, file format and attach rule are torch-free in ``core.head_np``, which also runs
the same weights in numpy for the CTranslate2 engine (no torch import at start-up).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .head_np import (  # noqa: F401  (the head's constants and file rules, torch-free, re-exported)
    HEAD_FORMAT,
    HEAD_PREFIX,
    INTENSITY_DEFAULTS,
    MAX_FRAMES,
    N_STATS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    STAT_POWERS,
    TARGETS,
    apply_head_meta,
    apply_intensity_defaults,
    encoder_frames_for,
    head_to_attach,
    read_head,
    shipped_head,
)

_HEAD_PREFIX = HEAD_PREFIX


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
    meta, state = read_head(path, model.config.d_model)
    ref = model.intensity_head.fc1.weight
    apply_head_meta(model.config, meta, state)
    hidden, n_stats = model.config.intensity_hidden, model.config.intensity_level_stats
    if hidden != model.intensity_head.fc1.out_features or n_stats != model.intensity_head.n_stats:
        model.intensity_head = IntensityHead(model.config.d_model, hidden, model.config.num_mel_bins, n_stats)
    model.intensity_head.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    model.intensity_head.to(device=ref.device, dtype=ref.dtype)
    return {**meta, "card": json.loads(meta.get("card") or "{}")}


# --- one rule for which head a model gets ------------------------------------------------


@dataclass
class LoadedModel:
    """What ``load_model`` gives: the model (head attached), its processor, where they came from."""

    model: object  # core.model.WhisperForASRAndIntensity
    processor: object  # transformers.WhisperProcessor
    path: str  # the folder (or hub id) the weights came from
    head_file: Path | None = None  # the head attached from a file, if one was
    head_card: dict | None = None  # that head's metadata and card
    head_note: str = ""  # why a shipped head was not used ("" when it was, or none was looked for)


def attach_head(loaded: LoadedModel, name_or_path, head) -> None:
    """The head rule of ``core.model.load_model`` (its docstring), applied to ``loaded.model``."""
    model = loaded.model
    chosen = head_to_attach(name_or_path, loaded.path, head, model.head_trained)
    if chosen is None:
        return
    try:
        loaded.head_card, loaded.head_file = load_head(model, chosen), chosen
    except ValueError as e:
        if head not in ("auto", True):
            raise
        loaded.head_note = str(e)  # a shipped head that does not fit: measured loudness only
        logging.getLogger(__name__).warning("intensity head not used: %s", e)
