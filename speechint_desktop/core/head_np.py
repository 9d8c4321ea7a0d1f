"""The intensity head at inference, in numpy, and a checkpoint's settings without torch.

The engine on CTranslate2 needs from the Whisper checkpoint only its settings (config and
generation config), and from the head a few small matrix products per window. Importing torch
for that costs over a second of every run's start-up, so inference runs the head here, with the
weights ``core.head``'s torch module trains and saves (tests hold the two equal). The file
format, the validation of a head file and the rule for which head a model gets live here once;
``core.head`` builds its torch module from them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

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
HEAD_PREFIX = "intensity_head."
HEAD_FORMAT = "speechint-intensity-head/2"  # /1 read the encoder state only
# Per encoder frame, the frame's total power p raised to these powers (0: log10 p): pooled, they
# are generalised means of the frames' power — low powers follow the quiet frames (the noise
# floor), high powers the loud ones (the voice) — and every one shifts by exactly the gain.
STAT_POWERS = (-1.0, 0.0, 0.5, 1.0, 2.0, 3.0)
N_STATS = len(STAT_POWERS)
LAYER_NORM_EPS = 1e-5  # torch's nn.LayerNorm default, which the head trains with


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


# --- what the head reads -----------------------------------------------------------------


def level_frames(features: np.ndarray) -> np.ndarray:
    """``core.head.level_frames`` in numpy: per encoder frame the mean power and mean log-mel of
    its two mel frames, then the frame's total power raised to ``STAT_POWERS``; (batch, n_mels,
    t) features → (batch, T, 2 * n_mels + N_STATS) float32."""
    b, n_mels, t = features.shape
    x = np.asarray(features[:, :, : t - t % 2], dtype=np.float32).reshape(b, n_mels, -1, 2)
    power = np.power(np.float32(10.0), 4.0 * x - 4.0).mean(-1, dtype=np.float32)
    log_mean = x.mean(-1, dtype=np.float32)
    total = np.maximum(power.sum(1, dtype=np.float32), 1e-10).astype(np.float64)  # (batch, T)
    with np.errstate(over="ignore"):
        stats = [np.log10(total) if k == 0 else np.power(total, k) for k in STAT_POWERS]
    stats = np.minimum(np.stack(stats, axis=1), 1e30).astype(np.float32)
    return np.concatenate([power, log_mean, stats], axis=1).transpose(0, 2, 1)


def head_inputs(hidden: np.ndarray, features: np.ndarray) -> np.ndarray:
    """What the head pools: the encoder's hidden state (batch, T, d_model) beside the level of
    its input frames."""
    level = level_frames(features)[:, : hidden.shape[1]]
    return np.concatenate([np.asarray(hidden, np.float32), level], axis=-1)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz & Stegun 7.1.26), below float32's own rounding of GELU; numpy
    has none, and scipy.special's import would cost what this module saves."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return s * (1.0 - poly * np.exp(-a * a))


@dataclass
class NumpyHead:
    """``core.head.IntensityHead`` forward, de-standardised: pooled head inputs (batch, d_model
    + 2·n_mels + N_STATS) → (batch,) in the target's dB."""

    weights: dict[str, np.ndarray]  # the torch module's state dict, float32
    d_model: int
    n_mels: int
    n_stats: int
    mean: float = -30.0
    std: float = 10.0

    @classmethod
    def from_module(cls, module, config) -> NumpyHead:
        """The numpy twin of a torch ``IntensityHead`` (the transformers backend's model)."""
        state = {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}
        return cls(
            state,
            module.d_model,
            module.n_mels,
            module.n_stats,
            float(config.intensity_mean),
            float(config.intensity_std),
        )

    def _linear(self, name: str, x: np.ndarray) -> np.ndarray:
        return x @ self.weights[f"{name}.weight"].T + self.weights[f"{name}.bias"]

    def level(self, pooled: np.ndarray) -> np.ndarray:
        d, m = self.d_model, self.n_mels
        if pooled.shape[-1] != d + 2 * m + N_STATS:
            raise ValueError(
                f"intensity head expects {d + 2 * m + N_STATS} pooled features, got {pooled.shape[-1]}"
            )
        power, log_mean = pooled[..., d : d + m], pooled[..., d + m : d + 2 * m]
        parts = [(np.log10(np.maximum(power, 1e-10)) + 4.0) / 4.0, log_mean]
        if self.n_stats:
            stats = pooled[..., d + 2 * m :]
            levels = [
                stats[..., i] if k == 0 else np.log10(np.maximum(stats[..., i], 1e-30)) / k
                for i, k in enumerate(STAT_POWERS)
            ]
            parts.append((np.stack(levels, axis=-1) + 4.0) / 4.0)
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def __call__(self, pooled: np.ndarray, standardized: bool = False) -> np.ndarray:
        pooled = np.asarray(pooled, dtype=np.float32)
        level = self.level(pooled)
        x = pooled[..., : self.d_model]
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        x = (x - mu) / np.sqrt(var + LAYER_NORM_EPS) * self.weights["norm.weight"] + self.weights["norm.bias"]
        h = self._linear("fc1", x) + self._linear("fc_level", level)
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))  # exact GELU, as nn.GELU()
        z = (self._linear("fc2", h) + self._linear("skip", level))[..., 0]
        return z if standardized else z * self.std + self.mean


# --- head files -----------------------------------------------------------------------------


def read_tensors(path, prefix: str = HEAD_PREFIX) -> tuple[dict, dict[str, np.ndarray]]:
    """A safetensors file's metadata and its ``prefix`` tensors (prefix removed) as float32 numpy;
    bfloat16 (which numpy lacks) goes through torch."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = dict(f.metadata() or {})
        names = [k for k in f.keys() if k.startswith(prefix)]
        try:
            state = {k[len(prefix) :]: f.get_tensor(k).astype(np.float32) for k in names}
        except (TypeError, ValueError):  # a dtype numpy cannot hold
            state = None
    if state is None:
        with safe_open(str(path), framework="pt") as f:
            state = {k[len(prefix) :]: f.get_tensor(k).float().numpy() for k in names}
    return meta, state


def read_head(path, d_model: int) -> tuple[dict, dict[str, np.ndarray]]:
    """A saved head's metadata and weights, checked to fit a model of width ``d_model``.

    Raises ValueError (one line) when the file is not a head for this model.
    """
    from safetensors import SafetensorError

    path = Path(path)
    try:
        meta, state = read_tensors(path)
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{path.name}: not a readable intensity head ({e})") from None
    if not state or "d_model" not in meta:
        raise ValueError(f"{path.name}: not a SpeechInt intensity head")
    if meta.get("format") != HEAD_FORMAT:
        raise ValueError(
            f"{path.name}: an intensity head of an older format ({meta.get('format')}); retrain it"
        )
    if int(meta["d_model"]) != d_model:
        raise ValueError(
            f"{path.name}: head is for a model of width {meta['d_model']}, this model has {d_model}"
        )
    if meta.get("intensity_target", "rms_dbfs") not in TARGETS:
        raise ValueError(f"{path.name}: unknown intensity target {meta.get('intensity_target')!r}")
    return meta, state


def apply_head_meta(config, meta: dict, state: dict) -> None:
    """A saved head's settings onto a model config (``intensity_*``), marking the head trained."""
    config.intensity_target = meta.get("intensity_target", "rms_dbfs")
    config.intensity_mean = float(meta.get("intensity_mean", -30.0))
    config.intensity_std = float(meta.get("intensity_std", 10.0))
    config.intensity_hidden = int(meta.get("intensity_hidden", state["fc1.weight"].shape[0]))
    config.intensity_level_stats = int(meta.get("level_stats", 0))  # heads before the voice ones: none
    tau = meta.get("fusion_tau_db")
    config.intensity_fusion_tau_db = float(tau) if tau else None
    config.intensity_head_trained = True


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


def head_to_attach(name_or_path, folder: str, head, trained: bool) -> Path | None:
    """The one rule for which head file a model gets (``core.model.load_model``'s docstring):
    none asked → none; ``auto`` → the catalogue's shipped head unless the checkpoint has its own
    trained one; a path → that file (which must exist)."""
    if head in (None, "none", False):
        return None
    if head in ("auto", True):
        return None if trained else shipped_head(name_or_path, folder)
    head_file = Path(os.fspath(head)).expanduser()
    if not head_file.is_file():
        raise ValueError(f"{head_file}: no such head file")
    return head_file


# --- a checkpoint's settings, without transformers ------------------------------------------------


def _namespace(path: Path) -> SimpleNamespace:
    return SimpleNamespace(**json.loads(path.read_text(encoding="utf-8")))


@dataclass
class LightModel:
    """What the engine needs of a checkpoint beside CTranslate2's Whisper: its settings and the
    intensity head (``head``: None when it has none)."""

    config: SimpleNamespace
    generation_config: SimpleNamespace
    path: str
    head: NumpyHead | None = None
    head_file: Path | None = None
    head_card: dict | None = None
    head_note: str = ""  # why a shipped head was not used

    @property
    def head_trained(self) -> bool:
        return bool(self.config.intensity_head_trained) and self.head is not None


def _numpy_head(config, state: dict[str, np.ndarray]) -> NumpyHead:
    n_stats = int(config.intensity_level_stats)
    return NumpyHead(
        state,
        int(config.d_model),
        int(config.num_mel_bins),
        n_stats,
        float(config.intensity_mean),
        float(config.intensity_std),
    )


def load_light(folder, name_or_path=None, head="auto") -> LightModel:
    """A local checkpoint's settings and intensity head, read from its JSON and safetensors with
    numpy only; the same head rule as ``core.model.load_model``."""
    folder = Path(folder)
    config = apply_intensity_defaults(_namespace(folder / "config.json"))
    generation = _namespace(folder / "generation_config.json")
    model = LightModel(config, generation, str(folder))
    if config.intensity_head_trained:  # the checkpoint's own head (training saves it in the weights)
        _, state = read_tensors(folder / "model.safetensors")
        if state:
            model.head = _numpy_head(config, state)
        else:  # says trained, holds no head: measured only
            config.intensity_head_trained = False
    name = name_or_path if name_or_path is not None else folder
    chosen = head_to_attach(name, str(folder), head, config.intensity_head_trained)
    if chosen is None:
        return model
    try:
        meta, state = read_head(chosen, int(config.d_model))
    except ValueError as e:
        if head not in ("auto", True):
            raise
        model.head_note = str(e)  # a shipped head that does not fit: measured loudness only
        logging.getLogger(__name__).warning("intensity head not used: %s", e)
        return model
    apply_head_meta(config, meta, state)
    model.head = _numpy_head(config, state)
    model.head_file, model.head_card = chosen, {**meta, "card": json.loads(meta.get("card") or "{}")}
    return model
