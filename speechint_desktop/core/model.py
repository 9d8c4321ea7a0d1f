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
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.modeling_outputs import Seq2SeqLMOutput

from .catalog import model_folder  # noqa: F401  (loading starts from it; no torch there)
from .fsutil import atomic_write_bytes
from .head import (  # noqa: F401  (the head's names, re-exported: callers import them from here)
    _HEAD_PREFIX,
    HEAD_FORMAT,
    INTENSITY_DEFAULTS,
    MAX_FRAMES,
    N_STATS,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    STAT_POWERS,
    TARGETS,
    IntensityHead,
    IntensityMethods,
    LoadedModel,
    apply_intensity_defaults,
    attach_head,
    encoder_frames_for,
    head_inputs,
    level_frames,
    load_head,
    load_own_head,
    pool_encoder,
    read_head_card,
    shipped_head,
    stat_levels,
)


@dataclass
class ASRAndIntensityOutput(Seq2SeqLMOutput):
    """Seq2SeqLMOutput plus the intensity prediction (raw units, dB) and both partial losses."""

    intensity: torch.Tensor | None = None
    asr_loss: torch.Tensor | None = None
    intensity_loss: torch.Tensor | None = None


class WhisperForASRAndIntensity(IntensityMethods, WhisperForConditionalGeneration):
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


# --- one way to load a model with its head ---------------------------------------------------


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
    attach_head(loaded, name_or_path, head)
    if device is not None:
        model.to(device)
    return loaded
