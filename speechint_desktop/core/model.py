"""The multi-task model: Whisper for the transcript plus a regression head for voice intensity.

The head reads the encoder's last hidden state together with the level of the log-mel frames
the encoder was fed, both mean-pooled over the frames that hold audio only: Whisper pads every
clip to 30 s, and pooling over that padding would make the prediction depend on the clip's
length rather than its loudness. The encoder's LayerNorms normalise most absolute level away
(a head on the hidden state alone was 2 dB off on held-out synthetic speech and up to 28 dB off
on real speech), so the head also sees each mel band's mean power — the encoder's own input,
no extra front end. Mean pooling (rather than attention pooling) lets training cache pooled
features once and fit the head alone, and lets the engine pool any span of any window.

The intensity settings live on the ``WhisperConfig`` itself, so any plain Whisper checkpoint
loads with defaults and ``intensity_head_trained=False``; callers must then show measured
loudness only (an untrained head's number means nothing).
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
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.modeling_outputs import Seq2SeqLMOutput

from .catalog import model_folder  # noqa: F401  (loading starts from it; no torch there)
from .fsutil import atomic_write_bytes

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


def apply_intensity_defaults(config: WhisperConfig) -> WhisperConfig:
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


@dataclass
class ASRAndIntensityOutput(Seq2SeqLMOutput):
    """Seq2SeqLMOutput plus the intensity prediction (raw units, dB) and both partial losses."""

    intensity: torch.Tensor | None = None
    asr_loss: torch.Tensor | None = None
    intensity_loss: torch.Tensor | None = None


class WhisperForASRAndIntensity(WhisperForConditionalGeneration):
    """Whisper encoder-decoder with an intensity regression head on the encoder."""

    def __init__(self, config: WhisperConfig):
        apply_intensity_defaults(config)
        super().__init__(config)
        self.intensity_head = IntensityHead(
            config.d_model,
            int(config.intensity_hidden),
            config.num_mel_bins,
            int(config.intensity_level_stats),
        )
        self.intensity_head.apply(self._init_weights)

    # --- the head, usable on its own (e.g. on cached pooled features) ---------------------

    pool_encoder = staticmethod(pool_encoder)
    head_inputs = staticmethod(head_inputs)

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

    def intensity_loss(self, pooled: torch.Tensor, intensity_labels: torch.Tensor) -> torch.Tensor:
        """MSE between standardised prediction and standardised target (the training loss)."""
        z = self.head(pooled, standardized=True)
        target = self.standardize(intensity_labels.to(z.dtype).reshape(z.shape))
        return nn.functional.mse_loss(z, target)

    def predict_intensity(
        self, encoder_hidden: torch.Tensor, input_features: torch.Tensor, encoder_frames=None
    ) -> torch.Tensor:
        """Raw-unit intensity from one encoder pass and its input, pooled over valid frames."""
        return self.head(pool_encoder(head_inputs(encoder_hidden, input_features), encoder_frames))

    # --- forward ---------------------------------------------------------------------------

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.LongTensor | None = None,
        encoder_outputs=None,
        cache=None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        intensity_labels: torch.Tensor | None = None,
        encoder_frames=None,
        lambda_intensity: float = 1.0,
        **kwargs,
    ) -> ASRAndIntensityOutput:
        """Whisper's forward plus the intensity head.

        The head runs when the encoder runs here (``input_features`` given) or when intensity
        labels/frames are passed; during ``generate`` (cached encoder outputs) it is skipped.
        With ``encoder_frames`` None the valid frames come from the feature ``attention_mask``
        (3000 mel frames → 1500 encoder frames), else every frame is pooled. Without labels or
        decoder inputs only the encoder runs (intensity-only training).
        """
        kwargs.pop("return_dict", None)
        decoder_given = (
            labels is not None or decoder_input_ids is not None or decoder_inputs_embeds is not None
        )
        if not decoder_given and input_features is not None and encoder_outputs is None:
            enc = self.model.encoder(input_features, attention_mask=attention_mask)
            out = Seq2SeqLMOutput(encoder_last_hidden_state=enc.last_hidden_state)
        else:
            out = super().forward(
                input_features=input_features,
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
                decoder_attention_mask=decoder_attention_mask,
                encoder_outputs=encoder_outputs,
                cache=cache,
                decoder_inputs_embeds=decoder_inputs_embeds,
                decoder_position_ids=decoder_position_ids,
                labels=labels,
                use_cache=use_cache,
                **kwargs,
            )
        asr_loss = out.loss
        intensity = intensity_loss = None
        wants_head = input_features is not None or intensity_labels is not None or encoder_frames is not None
        if wants_head and out.encoder_last_hidden_state is not None:
            if input_features is None:
                raise ValueError("the intensity head needs input_features (it reads their level)")
            if encoder_frames is None and attention_mask is not None:
                encoder_frames = (attention_mask.sum(-1) + 1) // 2
            pooled = pool_encoder(head_inputs(out.encoder_last_hidden_state, input_features), encoder_frames)
            z = self.head(pooled, standardized=True)
            intensity = self.unstandardize(z)
            if intensity_labels is not None:
                target = self.standardize(intensity_labels.to(z.device, z.dtype).reshape(z.shape))
                intensity_loss = nn.functional.mse_loss(z, target)
        loss = None
        if asr_loss is not None:
            loss = asr_loss
        if intensity_loss is not None:
            loss = (
                lambda_intensity * intensity_loss
                if loss is None
                else loss + lambda_intensity * intensity_loss
            )
        return ASRAndIntensityOutput(
            loss=loss,
            logits=out.logits,
            cache=out.cache,
            decoder_hidden_states=out.decoder_hidden_states,
            decoder_attentions=out.decoder_attentions,
            cross_attentions=out.cross_attentions,
            encoder_last_hidden_state=out.encoder_last_hidden_state,
            encoder_hidden_states=out.encoder_hidden_states,
            encoder_attentions=out.encoder_attentions,
            intensity=intensity,
            asr_loss=asr_loss,
            intensity_loss=intensity_loss,
        )


# --- shipped heads: just the head's weights + the intensity settings ------------------------


def _head_metadata(model: WhisperForASRAndIntensity, card: dict | None) -> dict[str, str]:
    c = model.config
    meta = {
        "format": HEAD_FORMAT,
        "d_model": str(c.d_model),
        "n_mels": str(c.num_mel_bins),
        "intensity_target": str(c.intensity_target),
        "intensity_mean": repr(float(c.intensity_mean)),
        "intensity_std": repr(float(c.intensity_std)),
        "intensity_hidden": str(int(c.intensity_hidden)),
        "level_stats": str(int(model.intensity_head.n_stats)),
        "card": json.dumps(card or {}, sort_keys=True),
    }
    if c.intensity_fusion_tau_db is not None:
        meta["fusion_tau_db"] = repr(float(c.intensity_fusion_tau_db))
    return meta


def save_head(model: WhisperForASRAndIntensity, path, card: dict | None = None) -> Path:
    """Write the head (safetensors, atomically); its settings and ``card`` go in the metadata."""
    from safetensors.torch import save

    tensors = {
        _HEAD_PREFIX + k: v.detach().to("cpu", torch.float32).contiguous()
        for k, v in model.intensity_head.state_dict().items()
    }
    return atomic_write_bytes(path, save(tensors, metadata=_head_metadata(model, card)))


def read_head_card(path) -> dict:
    """The head's metadata (settings + card) without loading it."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    meta["card"] = json.loads(meta.get("card") or "{}")
    return meta


def load_head(model: WhisperForASRAndIntensity, path) -> dict:
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


# --- one way to load a model with its head ---------------------------------------------------


@dataclass
class LoadedModel:
    """What ``load_model`` gives: the model (head attached), its processor, where they came from."""

    model: WhisperForASRAndIntensity
    processor: object  # transformers.WhisperProcessor
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


def load_model(
    name_or_path,
    head: str | os.PathLike | None = "auto",
    device=None,
    dtype=None,
    attn_implementation: str | None = None,
    install: bool = True,
) -> LoadedModel:
    """Load a model and its processor, with the intensity head found by one rule for every caller.

    ``name_or_path``: see ``model_folder``. ``head``:
      - ``"auto"``: a checkpoint whose config says its head is trained keeps it; otherwise the
        head shipped for a catalogue model is attached; a shipped head that does not fit is
        skipped (``head_note`` says why: measured loudness only, never a failed load);
      - ``"none"`` / ``None``: nothing attached (a trained checkpoint keeps its own head);
      - a file: that head, attached over whatever the checkpoint has; a bad file raises
        ValueError (one line).
    Raises ``catalog.ModelError`` / OSError / ValueError with a one-line message.
    """
    import transformers
    from transformers import WhisperProcessor

    path = model_folder(name_or_path, install=install)
    tlog = transformers.utils.logging
    verbosity, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()  # "intensity_head weights newly initialised" is expected, not news
    tlog.disable_progress_bar()
    kwargs = {}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = WhisperForASRAndIntensity.from_pretrained(path, **kwargs)
        processor = WhisperProcessor.from_pretrained(path)
    finally:
        tlog.set_verbosity(verbosity)
        if bars:
            tlog.enable_progress_bar()
    loaded = LoadedModel(model, processor, path)
    if head in (None, "none", False):
        pass
    elif head in ("auto", True):
        shipped = None if model.head_trained else shipped_head(name_or_path, path)
        if shipped is not None:
            try:
                loaded.head_card, loaded.head_file = load_head(model, shipped), shipped
            except ValueError as e:
                loaded.head_note = str(e)
                logging.getLogger(__name__).warning("intensity head not used: %s", e)
    else:
        head_file = Path(os.fspath(head)).expanduser()
        if not head_file.is_file():
            raise ValueError(f"{head_file}: no such head file")
        loaded.head_card, loaded.head_file = load_head(model, head_file), head_file
    if device is not None:
        model.to(device)
    return loaded
