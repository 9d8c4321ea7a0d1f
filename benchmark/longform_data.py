"""Long recordings with known transcripts, built deterministically from a seed.

Short clips don't exercise what breaks on real recordings: long silences, background noise, quiet
and loud talkers, many windows in a row. This builds ~N-minute WAVs from utterances whose words we
know and writes a manifest with each file's reference transcript and utterance boundaries, so any
benchmark or test can score long-form transcription:

    from benchmark.longform_data import CorpusSpec, build_corpus
    recs = build_corpus(CorpusSpec(minutes=10, seed=0), n_files=3)   # cached under /tmp
    recs[0].path, recs[0].reference, recs[0].events

Content of each recording (all drawn from ``numpy.random.default_rng([seed, file_index])``, so
file k is the same whatever ``n_files`` is):

- speech: the real clips ``jfk.flac`` and ``LDC93S1.wav`` from ``../shared/audio`` (transcripts
  from its README) and espeak-ng sentences from ``benchmark/data/sentences.txt`` (voices en-us,
  en-gb, en-gb-scotland with variants like +f3/+m3, 140-190 wpm, varied pitch), each re-gained so
  its RMS is ``level_dbfs`` +-``level_spread_db`` (uniform);
- gaps of 2-12 s, either "quiet" (only a dither floor at about -80 dBFS) or "noise" (a bed cut
  from ``extra/noise/*.wav`` at about -40 dBFS RMS); the bed also runs under the speech;
- some gaps carry a "tone" event: a clip from ``extra/speech``. Those clips are not speech despite
  the folder's name (synthetic musical notes, see ``data/extra_speech_refs.json``), so their
  reference is empty and any word written over them counts as an insertion.

Built files are cached in ``<cache>/<tag>-<hash of the spec and inputs>/`` and reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED_AUDIO = REPO.parent / "shared" / "audio"
SENTENCES_FILE = HERE / "data" / "sentences.txt"
EXTRA_REFS_FILE = HERE / "data" / "extra_speech_refs.json"
DEFAULT_CACHE = Path("/tmp/speechint-longform")
BUILDER_VERSION = 1  # bump when the build changes, so old caches are not reused

# ../shared/audio/README.md
REAL_CLIPS = {
    "jfk.flac": "And so, my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country.",
    "LDC93S1.wav": "She had your dark suit in greasy wash water all year.",
}
VOICES = ("en-us", "en-gb", "en-gb-scotland")
VARIANTS = ("", "+m1", "+m3", "+f2", "+f3", "+f4")
DITHER_DBFS = -80.0
FADE_S = 0.05


@dataclass(frozen=True)
class CorpusSpec:
    """Everything that decides the audio (except the file index). Part of the cache key."""

    minutes: float = 10.0
    seed: int = 0
    sample_rate: int = 16000
    channels: int = 1
    level_dbfs: float = -28.0  # utterance RMS before the +- spread; +7 still leaves peaks under -1 dBFS
    level_spread_db: float = 7.0
    gap_s: tuple[float, float] = (2.0, 12.0)
    noise_dbfs: float = -40.0  # background bed RMS (under speech and in "noise" gaps)
    quiet_gap_fraction: float = 0.35  # gaps with only the dither floor
    real_fraction: float = 0.15  # utterances taken from the real clips rather than espeak-ng
    tone_fraction: float = 0.1  # gaps that carry a non-speech extra/speech clip
    wpm: tuple[int, int] = (140, 190)
    pitch: tuple[int, int] = (35, 65)

    def key(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([BUILDER_VERSION, dataclasses.asdict(self)], sort_keys=True).encode())
        for p in (SENTENCES_FILE, EXTRA_REFS_FILE):
            h.update(p.read_bytes())
        return h.hexdigest()[:12]

    def folder(self, cache: Path | str = DEFAULT_CACHE) -> Path:
        tag = f"{self.sample_rate // 1000}k{self.channels}ch-{self.minutes:g}min-seed{self.seed}"
        return Path(cache) / f"{tag}-{self.key()}"


@dataclass
class Recording:
    path: Path
    reference: str
    duration_s: float
    sample_rate: int
    channels: int
    events: list[dict] = field(default_factory=list)  # speech and tone events, in time order
    gaps: list[dict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.path.stem

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Recording:
        d = dict(d)
        d["path"] = Path(d["path"])
        d.pop("spec_key", None)
        return cls(**d)


def load_sentences(path: Path = SENTENCES_FILE) -> list[str]:
    lines = (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


def _db(x: float) -> float:
    return 10 ** (x / 20)


def _rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _read_mono(path: Path, sr: int) -> np.ndarray:
    import soundfile as sf
    import soxr

    x, sr_in = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr_in != sr:
        x = soxr.resample(x, sr_in, sr, quality="VHQ").astype(np.float32)
    return x


def _trim(x: np.ndarray, sr: int, below_db: float = -50.0, margin_s: float = 0.05) -> np.ndarray:
    """Drop espeak-ng's leading/trailing silence so the manifest's boundaries are the speech's."""
    frame = max(1, sr // 100)
    n = len(x) // frame
    if n == 0:
        return x
    e = np.sqrt(np.mean(np.square(x[: n * frame].reshape(n, frame)), axis=1))
    on = np.nonzero(e > np.max(e) * _db(below_db))[0]
    if len(on) == 0:
        return x
    m = int(margin_s * sr)
    return x[max(0, on[0] * frame - m) : min(len(x), (on[-1] + 1) * frame + m)]


class _Sources:
    """Loads and caches source clips at the corpus rate (espeak-ng output cached on disk)."""

    def __init__(self, sr: int, cache: Path):
        self.sr = sr
        self.espeak_dir = cache / "espeak"
        self._mem: dict[str, np.ndarray] = {}
        self.exe = shutil.which("espeak-ng")

    def real(self, name: str) -> np.ndarray:
        if name not in self._mem:
            self._mem[name] = _read_mono(SHARED_AUDIO / name, self.sr)
        return self._mem[name]

    def tone(self, name: str) -> np.ndarray:
        key = "tone:" + name
        if key not in self._mem:
            self._mem[key] = _read_mono(SHARED_AUDIO / "extra" / "speech" / name, self.sr)
        return self._mem[key]

    def espeak(self, text: str, voice: str, wpm: int, pitch: int) -> np.ndarray:
        if self.exe is None:
            raise RuntimeError("espeak-ng is not installed (scripts/setup.sh installs it)")
        h = hashlib.sha256(json.dumps([text, voice, wpm, pitch]).encode()).hexdigest()[:16]
        wav = self.espeak_dir / f"{h}.wav"
        if not wav.exists():
            self.espeak_dir.mkdir(parents=True, exist_ok=True)
            tmp = wav.with_suffix(".tmp.wav")
            cmd = [self.exe, "-v", voice, "-s", str(wpm), "-p", str(pitch), "-w", str(tmp), text]
            subprocess.run(cmd, check=True, capture_output=True)
            tmp.replace(wav)
        return _trim(_read_mono(wav, self.sr), self.sr)

    def noise_files(self) -> list[np.ndarray]:
        if "noise" not in self._mem:
            paths = sorted((SHARED_AUDIO / "extra" / "noise").glob("*.wav"))
            self._mem["noise"] = [_read_mono(p, self.sr) for p in paths]  # type: ignore[assignment]
        return self._mem["noise"]  # type: ignore[return-value]


def _noise_bed(rng: np.random.Generator, src: _Sources, n: int, level_dbfs: float) -> np.ndarray:
    """Random 3-15 s stretches of the extra/noise recordings, each at ``level_dbfs`` RMS, crossfaded."""
    sr = src.sr
    noises = src.noise_files()
    fade = int(FADE_S * sr)
    ramp = np.sin(np.linspace(0, np.pi / 2, fade, dtype=np.float32)) ** 2
    bed = np.zeros(n + fade, np.float32)
    pos = 0
    while pos < n:
        x = noises[rng.integers(len(noises))]
        length = int(rng.uniform(3, 15) * sr) + fade
        start = int(rng.integers(len(x)))
        idx = (start + np.arange(length)) % len(x)  # loops short recordings
        chunk = x[idx].copy()
        chunk *= _db(level_dbfs - _rms_db(chunk))
        chunk[:fade] *= ramp
        chunk[-fade:] *= ramp[::-1]
        end = min(len(bed), pos + length)
        bed[pos:end] += chunk[: end - pos]
        pos += length - fade
    return bed[:n]


def _place_level(rng: np.random.Generator, spec: CorpusSpec, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Gain ``x`` to a random RMS level; back off if its peak would pass -1 dBFS."""
    target = spec.level_dbfs + rng.uniform(-spec.level_spread_db, spec.level_spread_db)
    gain = target - _rms_db(x)
    peak = float(20 * np.log10(np.max(np.abs(x)) + 1e-20))
    gain = min(gain, -1.0 - peak)
    return (x * _db(gain)).astype(np.float32), round(_rms_db(x) + gain, 2)


def _build_one(spec: CorpusSpec, index: int, folder: Path, src: _Sources, sentences: list[str]) -> Recording:
    import soundfile as sf

    rng = np.random.default_rng([spec.seed, index])
    sr = spec.sample_rate
    total = int(round(spec.minutes * 60 * sr))
    tones = sorted(json.loads(EXTRA_REFS_FILE.read_text(encoding="utf-8"))["references"])
    order = rng.permutation(len(sentences))
    speech = np.zeros(total, np.float32)
    quiet = np.zeros(total, bool)
    events: list[dict] = []
    gaps: list[dict] = []
    pos, k = 0, 0

    def add_gap(length: int) -> None:
        kind = "quiet" if rng.uniform() < spec.quiet_gap_fraction else "noise"
        start, end = pos, min(total, pos + length)
        if kind == "quiet":
            quiet[start:end] = True
        gaps.append({"start": round(start / sr, 3), "end": round(end / sr, 3), "kind": kind})
        if rng.uniform() < spec.tone_fraction:
            name = tones[rng.integers(len(tones))]
            y, level = _place_level(rng, spec, src.tone(name))
            room = (end - start) - len(y) - 2 * sr
            if room > 0:
                t0 = start + sr + int(rng.integers(room))
                speech[t0 : t0 + len(y)] += y
                quiet[t0 : t0 + len(y)] = False  # a sound in a "quiet" gap still gets the room's bed
                events.append(
                    {
                        "kind": "tone",
                        "source": f"extra/speech/{name}",
                        "start": round(t0 / sr, 3),
                        "end": round((t0 + len(y)) / sr, 3),
                        "text": "",
                        "level_dbfs": level,
                    }
                )

    while True:
        gap = int(rng.uniform(*spec.gap_s) * sr)
        if rng.uniform() < spec.real_fraction:
            name = sorted(REAL_CLIPS)[rng.integers(len(REAL_CLIPS))]
            x, text, meta = src.real(name), REAL_CLIPS[name], {"source": name}
        else:
            text = sentences[order[k % len(order)]]
            k += 1
            voice = VOICES[rng.integers(len(VOICES))] + VARIANTS[rng.integers(len(VARIANTS))]
            wpm = int(rng.integers(spec.wpm[0], spec.wpm[1] + 1))
            pitch = int(rng.integers(spec.pitch[0], spec.pitch[1] + 1))
            x = src.espeak(text, voice, wpm, pitch)
            meta = {"source": "espeak-ng", "voice": voice, "wpm": wpm, "pitch": pitch}
        if pos + gap + len(x) + int(spec.gap_s[0] * sr) > total:
            break
        add_gap(gap)
        pos += gap
        y, level = _place_level(rng, spec, x)
        speech[pos : pos + len(y)] += y
        events.append(
            {
                "kind": "speech",
                "start": round(pos / sr, 3),
                "end": round((pos + len(y)) / sr, 3),
                "text": text,
                "level_dbfs": level,
                **meta,
            }
        )
        pos += len(y)
    add_gap(total - pos)
    events.sort(key=lambda e: e["start"])

    # background: the noise bed, faded out in quiet gaps, plus a dither floor everywhere
    env = np.where(quiet, 0.0, 1.0).astype(np.float32)
    fade = int(FADE_S * sr)
    c = np.concatenate(
        [[0.0], np.cumsum(np.pad(env, (fade // 2, fade - fade // 2), mode="edge"), dtype=np.float64)]
    )
    env = ((c[fade:] - c[:-fade]) / fade)[:total].astype(np.float32)  # moving average: 50 ms ramps
    out = np.empty((total, spec.channels), np.float32)
    for c in range(spec.channels):
        bed = _noise_bed(rng, src, total, spec.noise_dbfs) * env
        dither = rng.standard_normal(total).astype(np.float32) * _db(DITHER_DBFS)
        out[:, c] = speech + bed + dither
    np.clip(out, -1.0, 1.0, out=out)

    path = folder / f"longform-{index:03d}.wav"
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), out, sr, subtype="PCM_16")
    tmp.replace(path)
    reference = " ".join(e["text"] for e in events if e["kind"] == "speech")
    rec = Recording(path, reference, total / sr, sr, spec.channels, events, gaps)
    meta_path = path.with_suffix(".json")
    meta_path.write_text(json.dumps({**rec.to_json(), "spec_key": spec.key()}, indent=1) + "\n")
    return rec


def build_corpus(
    spec: CorpusSpec | None = None, n_files: int = 3, cache: Path | str = DEFAULT_CACHE, log=print
) -> list[Recording]:
    """The first ``n_files`` recordings of ``spec``, built on first use and read from the cache after.

    Also writes ``manifest.json`` (spec + these recordings) in the corpus folder.
    """
    spec = spec or CorpusSpec()
    folder = spec.folder(cache)
    folder.mkdir(parents=True, exist_ok=True)
    src = _Sources(spec.sample_rate, Path(cache))
    sentences = load_sentences()
    key = spec.key()
    recs = []
    for i in range(n_files):
        meta = folder / f"longform-{i:03d}.json"
        if meta.exists() and meta.with_suffix(".wav").exists():
            d = json.loads(meta.read_text())
            if d.get("spec_key") == key:
                recs.append(Recording.from_json(d))
                continue
        if log:
            log(f"building {meta.with_suffix('.wav')}")
        recs.append(_build_one(spec, i, folder, src, sentences))
    manifest = {
        "builder": "benchmark/longform_data.py",
        "builder_version": BUILDER_VERSION,
        "spec": dataclasses.asdict(spec),
        "spec_key": key,
        "recordings": [r.to_json() for r in recs],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return recs


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        description="Build (or find) the long-form corpus and print its manifest path."
    )
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stereo48k", action="store_true", help="48 kHz stereo instead of 16 kHz mono")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = ap.parse_args(argv)
    spec = CorpusSpec(
        minutes=args.minutes,
        seed=args.seed,
        sample_rate=48000 if args.stereo48k else 16000,
        channels=2 if args.stereo48k else 1,
    )
    recs = build_corpus(spec, args.files, args.cache)
    for r in recs:
        n_sp = sum(e["kind"] == "speech" for e in r.events)
        print(f"{r.path}  {r.duration_s:.0f} s  {n_sp} utterances  {len(r.reference.split())} words")
    print(spec.folder(args.cache) / "manifest.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
