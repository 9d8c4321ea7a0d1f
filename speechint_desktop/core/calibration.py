"""Calibration from dBFS to dB SPL: one offset, typed in or read off a reference tone.

A recording chain (microphone, preamp gain, converter) maps sound pressure to digital level by
a fixed offset as long as nothing in it changes: ``dB SPL = dBFS + offset``. The offset comes
from a number the user knows (``from_offset``) or from a recording of a reference at a known
SPL (``from_tone``): a 94 dB SPL (1 Pa) acoustic calibrator, or any steady sound whose level a
phone SPL app reads. dB SPL is an RMS quantity, so the tone's RMS is what is matched (a full
scale sine is −3.01 dBFS RMS). Only unweighted dBFS quantities convert (RMS, the P.56 voice
level, word RMS, a dBFS head's prediction); LUFS are K-weighted and stay as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

STEADY_WINDOW_DB = 3.0  # 100 ms blocks within this of the loudest block are the steady tone
DEFAULT_REFERENCE_SPL = 94.0


class CalibrationError(ValueError):
    """One line: why this reference cannot calibrate."""


@dataclass(frozen=True)
class Calibration:
    """``dB SPL = dBFS + spl_offset_db``; ``source`` says where the offset came from."""

    spl_offset_db: float
    source: str = "typed in"

    def spl(self, dbfs: float | None) -> float | None:
        """A dBFS value in dB SPL (None for None or silence)."""
        if dbfs is None or not math.isfinite(float(dbfs)):
            return None
        return float(dbfs) + self.spl_offset_db

    def describe(self) -> str:
        return f"dB SPL = dBFS {self.spl_offset_db:+.2f} dB ({self.source})"

    @classmethod
    def from_dict(cls, d: dict | None) -> Calibration | None:
        if not d or d.get("spl_offset_db") is None:
            return None
        return cls(float(d["spl_offset_db"]), str(d.get("source") or "typed in"))


def from_offset(offset_db: float) -> Calibration:
    if not math.isfinite(offset_db):
        raise CalibrationError(f"calibration offset must be a number, not {offset_db}")
    return Calibration(float(offset_db), "typed in")


def tone_level_dbfs(samples: np.ndarray, sr: int) -> float:
    """RMS (dBFS) of the steady part of a reference recording: the 100 ms blocks within 3 dB of
    the loudest, so handling noise before and after the tone does not count."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    n = max(1, int(0.1 * sr))
    k = len(x) // n
    if k == 0:
        raise CalibrationError("reference recording shorter than 0.1 s")
    power = np.mean(x[: k * n].reshape(k, n) ** 2, axis=1)
    if not (power > 0).any():
        raise CalibrationError("reference recording is silent")
    db = 10 * np.log10(np.maximum(power, 1e-30))
    steady = db >= db.max() - STEADY_WINDOW_DB
    if steady.sum() * n < 0.5 * sr:
        raise CalibrationError("reference recording has no steady tone of at least 0.5 s")
    return float(10 * np.log10(power[steady].mean()))


def from_tone(source, spl_db: float = DEFAULT_REFERENCE_SPL) -> Calibration:
    """The offset that makes the reference (a path or an ``AudioClip``) read ``spl_db`` dB SPL;
    raises ``CalibrationError`` or ``audio.AudioError`` (one line)."""
    from .audio import AudioClip, load_audio  # results import this module: keep it light

    clip = source if isinstance(source, AudioClip) else load_audio(source)
    level = tone_level_dbfs(clip.samples, clip.sample_rate)
    name = (
        Path(str(clip.source or source)).name
        if not isinstance(source, AudioClip)
        else (clip.source or "tone")
    )
    return Calibration(spl_db - level, f"{Path(str(name)).name} read as {spl_db:g} dB SPL ({level:.2f} dBFS)")
