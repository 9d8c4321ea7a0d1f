"""Datasets for multi-task training: one path for hub datasets, audiofolders and manifests.

Every source becomes a list of rows ``{"audio": {"path", "bytes"}, "text", "intensity"}``
(the hub through 🤗 datasets with ``Audio(decode=False)``; local folders and manifests read
directly), and every row is decoded the same way, by ``core.audio``. The target is the
``intensity`` column when present (a human rating: never shifted by gain), otherwise the
clip's level measured by ``core.loudness`` on the 16 kHz mono signal the model hears.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from torch.utils.data import Dataset

from speechint_desktop.core.audio import AudioError, as_clip, load_audio, to_model_input
from speechint_desktop.core.loudness import integrated_loudness, rms_dbfs, sample_peak_dbfs

SAMPLE_RATE = 16000
TEXT_COLUMNS = ("transcription", "text", "sentence", "transcript")
AUDIO_COLUMNS = ("file_name", "audio", "path", "file", "audio_filepath")
METHODS = ("rms", "lufs")

# Hub datasets as a user with internet names them: (config, text column, split aliases).
HUB_ALIASES = {
    "openslr/librispeech_asr": "clean",
    "librispeech_asr": "clean",
    "mozilla-foundation/common_voice_11_0": None,  # config = --language
}


class DataError(Exception):
    """One user-facing line: which dataset/file and what is wrong with it."""


@dataclass(frozen=True)
class Row:
    """One utterance before decoding: where its audio is, its text, and a rating if annotated."""

    key: str
    text: str
    path: str | None = None
    data: bytes | None = None
    intensity: float | None = None


@dataclass
class Example:
    """A decoded utterance ready for the collator (16 kHz mono, target in the method's units)."""

    key: str
    audio: np.ndarray
    text: str
    target: float
    gain_db: float = 0.0
    annotated: bool = False


# ---------------------------------------------------------------- sources → rows


def _float_or_none(v) -> float | None:
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _row_from_record(rec: dict, base: Path | None, where: str) -> Row:
    text_col = next((c for c in TEXT_COLUMNS if c in rec), None)
    audio_col = next((c for c in AUDIO_COLUMNS if c in rec), None)
    if audio_col is None:
        raise DataError(f"{where}: no audio column (expected one of {', '.join(AUDIO_COLUMNS)})")
    audio = rec[audio_col]
    text = str(rec.get(text_col) or "") if text_col else ""
    intensity = _float_or_none(rec.get("intensity"))
    if "intensity" in rec and rec["intensity"] not in (None, "") and intensity is None:
        raise DataError(f"{where}: intensity {rec['intensity']!r} is not a number")
    if isinstance(audio, dict):  # hub row with Audio(decode=False)
        path, data = audio.get("path"), audio.get("bytes")
        key = str(path or rec.get("id") or where)
        return Row(key, text, path=path, data=data, intensity=intensity)
    p = Path(str(audio))
    if base is not None and not p.is_absolute():
        p = base / p
    return Row(str(p), text, path=str(p), intensity=intensity)


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path.name}:{i}: not valid JSON ({e.msg})") from None
    return out


def _manifest_rows(path: Path) -> list[Row]:
    recs = _read_jsonl(path) if path.suffix.lower() in (".jsonl", ".json") else _read_csv(path)
    return [_row_from_record(r, path.parent, f"{path.name}:{i + 2}") for i, r in enumerate(recs)]


def _local_rows(dataset: Path, split: str) -> list[Row]:
    """An audiofolder (``split/metadata.csv|jsonl``) or a manifest (file, or ``split.csv|jsonl``)."""
    if dataset.is_file():
        return _manifest_rows(dataset)
    for cand in (
        dataset / split / "metadata.csv",
        dataset / split / "metadata.jsonl",
        dataset / f"{split}.csv",
        dataset / f"{split}.jsonl",
    ):
        if cand.is_file():
            return _manifest_rows(cand)
    if split in ("", "all", "train") and (dataset / "metadata.csv").is_file():
        return _manifest_rows(dataset / "metadata.csv")
    raise DataError(f"{dataset}: no split {split!r} (expected {split}/metadata.csv or {split}.csv/.jsonl)")


def _hub_rows(name: str, split: str, language: str | None) -> list[Row]:
    """A hub dataset through 🤗 datasets; needs the network (or a warm cache) at run time."""
    import datasets

    config = HUB_ALIASES.get(name)
    if name.startswith("mozilla-foundation/common_voice"):
        config = language or "en"
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # datasets raises many types; the user needs one line
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{name} ({split}): cannot load ({msg})") from None
    audio_col = next((c for c in ("audio", "file_name") if c in ds.column_names), None)
    if audio_col is None:
        raise DataError(f"{name}: no audio column")
    ds = ds.cast_column(audio_col, datasets.Audio(decode=False))
    return [_row_from_record(dict(r), None, f"{name}[{i}]") for i, r in enumerate(ds)]


def load_rows(dataset: str | Path, split: str, language: str | None = None) -> list[Row]:
    """Rows of one split; a local path wins over a hub name."""
    p = Path(dataset).expanduser()
    if p.exists():
        rows = _local_rows(p, split)
    elif "/" in str(dataset) and not str(dataset).startswith((".", "/", "~")):
        rows = _hub_rows(str(dataset), split, language)
    else:
        raise DataError(f"{dataset}: no such folder or manifest")
    if not rows:
        raise DataError(f"{dataset} ({split}): no utterances")
    return rows


# ---------------------------------------------------------------- decoding and targets


def decode_row(row: Row) -> np.ndarray:
    """16 kHz mono float32; raises AudioError with a one-line message."""
    if row.data is not None:
        try:
            x, sr = sf.read(io.BytesIO(row.data), dtype="float32", always_2d=True)
        except Exception:
            raise AudioError(f"{Path(row.key).name}: not a readable audio file") from None
        return to_model_input(as_clip(x, sr, source=row.key))
    if row.path is None:
        raise AudioError(f"{row.key}: no audio")
    return to_model_input(load_audio(row.path))


def measure_target(x: np.ndarray, method: str) -> float | None:
    """The level the head learns: RMS dBFS or BS.1770 integrated loudness (LUFS)."""
    if method == "rms":
        v = rms_dbfs(x)
    elif method == "lufs":
        v = integrated_loudness(x, SAMPLE_RATE)
    else:
        raise ValueError(f"unknown intensity method {method!r} (rms or lufs)")
    return v if v is not None and math.isfinite(v) else None


def apply_gain(x: np.ndarray, target: float, gain_db: float) -> tuple[np.ndarray, float, float]:
    """Scale by ``gain_db`` limited so the peak stays ≤ 0 dBFS; shift the target by the gain applied."""
    peak = sample_peak_dbfs(x)
    if math.isfinite(peak):
        gain_db = min(gain_db, -peak)
    y = (x.astype(np.float64) * 10.0 ** (gain_db / 20.0)).astype(np.float32)
    return y, target + gain_db, gain_db


class SpeechIntensityDataset(Dataset):
    """Decodes on access; the random gain depends only on (seed, epoch, index), so a resumed run
    sees exactly the audio an uninterrupted one would."""

    def __init__(
        self,
        rows: Sequence[Row],
        method: str = "rms",
        gain_range_db: tuple[float, float] | None = None,
        seed: int = 0,
    ):
        if method not in METHODS:
            raise ValueError(f"unknown intensity method {method!r} (rms or lufs)")
        self.rows = list(rows)
        self.method = method
        self.gain_range_db = gain_range_db
        self.seed = seed
        self.epoch = 0
        self._targets: dict[int, float | None] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> Example:
        row = self.rows[i]
        x = decode_row(row)
        if row.intensity is not None:
            return Example(row.key, x, row.text, row.intensity, 0.0, annotated=True)
        target = measure_target(x, self.method)
        if target is None:
            raise AudioError(f"{Path(row.key).name}: silent or too short to measure {self.method}")
        gain = 0.0
        if self.gain_range_db is not None:
            rng = random.Random(f"{self.seed}:{self.epoch}:{i}")
            x, target, gain = apply_gain(x, target, rng.uniform(*self.gain_range_db))
        return Example(row.key, x, row.text, target, gain)


def check_rows(ds: SpeechIntensityDataset, log=print) -> SpeechIntensityDataset:
    """Drop the utterances that cannot be used, one line each, so a batch never stops on one file."""
    keep = []
    for i, row in enumerate(ds.rows):
        try:
            x = decode_row(row)
            if row.intensity is None and measure_target(x, ds.method) is None:
                raise AudioError(f"{Path(row.key).name}: silent or too short to measure {ds.method}")
        except AudioError as e:
            log(f"skipped: {e}")
            continue
        keep.append(ds.rows[i])
    if not keep:
        raise DataError("no usable utterances")
    ds.rows = keep
    return ds
