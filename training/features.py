"""Features the intensity regressors read: pooled Whisper encoder states and log-mel statistics.

The head sees only the mean over the clip's frames of the encoder's last hidden state and the
level of its input (``core.model.head_inputs``, ``pool_encoder``), so with a frozen encoder one
pass per (clip, gain) gives everything head training needs. The baseline reads log-mel
statistics computed with Whisper's own mel filterbank but without its per-clip clamp, so it keeps
absolute level.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from speechint_desktop.core.model import N_STATS, encoder_frames_for, head_inputs, pool_encoder


@torch.inference_mode()
def pooled_encoder_features(
    model,
    processor,
    audios: Sequence[np.ndarray],
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(n, d_model + 2·n_mels + N_STATS) float32: each clip's pooled head inputs (``core.model.head_inputs``)."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    out = []
    for i in range(0, len(audios), batch_size):
        chunk = [np.asarray(a, dtype=np.float32) for a in audios[i : i + batch_size]]
        feats = processor.feature_extractor(chunk, sampling_rate=16000, return_tensors="pt")["input_features"]
        x = feats.to(device, dtype)
        hidden = model.model.encoder(x).last_hidden_state
        frames = [encoder_frames_for(len(a)) for a in chunk]
        out.append(pool_encoder(head_inputs(hidden, x), frames).float().cpu().numpy())
        if progress:
            progress(min(i + batch_size, len(audios)), len(audios))
    d = model.config.d_model + 2 * model.config.num_mel_bins + N_STATS
    return np.concatenate(out) if out else np.zeros((0, d), np.float32)


_MEL = None


def _mel_filters() -> np.ndarray:
    global _MEL
    if _MEL is None:
        from transformers import WhisperFeatureExtractor

        _MEL = WhisperFeatureExtractor().mel_filters.astype(np.float64)  # (201, 80)
    return _MEL


def logmel_stats(x: np.ndarray, n_fft: int = 400, hop: int = 160) -> np.ndarray:
    """Mean, std, 10th/50th/90th percentile of each of 80 log10 mel bands (400 features)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    n = 1 + (len(x) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] * np.hanning(n_fft + 1)[:-1]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    logmel = np.log10(np.maximum(power @ _mel_filters(), 1e-12))  # (frames, 80)
    pct = np.percentile(logmel, [10, 50, 90], axis=0)
    return np.concatenate([logmel.mean(0), logmel.std(0), *pct]).astype(np.float32)


@torch.inference_mode()
def pooled_level_inputs(processor, audios: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """(n, 2·n_mels + N_STATS): the pooled level part of ``head_inputs`` alone (band power, log-mel,
    frame-level statistics). It reads the encoder's input, not the encoder: no encoder pass."""
    from speechint_desktop.core.model import level_frames

    out = []
    for i in range(0, len(audios), batch_size):
        chunk = [np.asarray(a, dtype=np.float32) for a in audios[i : i + batch_size]]
        x = processor.feature_extractor(chunk, sampling_rate=16000, return_tensors="pt")["input_features"]
        out.append(pool_encoder(level_frames(x), [encoder_frames_for(len(a)) for a in chunk]).numpy())
    return np.concatenate(out) if out else np.zeros((0, 160 + N_STATS), np.float32)


def pooled_level_stats(processor, audios: Sequence[np.ndarray], batch_size: int = 16) -> np.ndarray:
    """(n, N_STATS): the pooled frame-level statistics alone — features cached before they
    existed are completed without an encoder pass."""
    return pooled_level_inputs(processor, audios, batch_size)[:, -N_STATS:]
