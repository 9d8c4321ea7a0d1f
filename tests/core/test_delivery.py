"""Delivery specs and compliance checks, on real speech made to pass and to fail each limit.

The ACX "narrations" are real speech (``../shared/audio/extra/speech``) over a real noise bed
(``extra/noise``) at 44.1 kHz, built to pass every ACX criterion or to fail exactly one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechint_desktop import cli
from speechint_desktop.core import audio, delivery
from speechint_desktop.core import loudness as L
from speechint_desktop.core.results import Loudness

EXTRA = Path(__file__).resolve().parents[2].parent / "shared" / "audio" / "extra"
SR = 44100


def _read(rel: str) -> np.ndarray:
    p = EXTRA / rel
    if not p.exists():
        pytest.fail(f"missing real audio {p}: the shared/ folder must sit beside the repo")
    x, sr = sf.read(str(p), dtype="float32")
    return audio.resample(x, sr, SR)


@pytest.fixture(scope="module")
def voice() -> tuple[np.ndarray, np.ndarray]:
    """Two real utterances of one speaker and a real, steady noise recording (44.1 kHz mono)."""
    return (
        np.concatenate([_read("speech/sep_source1_2.wav"), _read("speech/sep_source1_3.wav")]),
        _read("noise/noise2.wav"),
    )


def narration(path: Path, voice, rms_dbfs=-20.0, floor_dbfs=-68.0, click_dbfs=None) -> Path:
    """1 s of room tone, an utterance, 1 s, the next, 2 s; the noise bed runs throughout.

    The speech is scaled so the whole file's RMS is ``rms_dbfs``, the bed so its quietest 0.5 s
    reads ``floor_dbfs``; ``click_dbfs`` adds a 3-sample click of that peak in a pause.
    """
    speech, noise = voice
    half = len(speech) // 2
    track = np.concatenate(
        [np.zeros(SR), speech[:half], np.zeros(SR), speech[half:], np.zeros(2 * SR)]
    ).astype(np.float64)
    bed = np.resize(noise, track.size).astype(np.float64)
    floor, _ = delivery.noise_floor(audio.as_clip(bed[: 3 * SR], SR))
    bed *= 10 ** ((floor_dbfs - floor) / 20)
    track *= 10 ** ((rms_dbfs - L.rms_dbfs(track)) / 20)
    x = track + bed
    x *= 10 ** ((rms_dbfs - L.rms_dbfs(x)) / 20)
    if click_dbfs is not None:
        x[SR // 2 : SR // 2 + 3] = 10 ** (click_dbfs / 20)
    sf.write(str(path), x, SR, subtype="PCM_24")
    return path


ACX_FILES = {
    "passes": {},
    "too_quiet": {"rms_dbfs": -25.5},
    "too_loud": {"rms_dbfs": -16.0},
    "peak": {"click_dbfs": -1.0},
    "noisy": {"floor_dbfs": -52.0},
}
ACX_FAILS = {
    "passes": set(),
    "too_quiet": {"RMS"},
    "too_loud": {"RMS"},
    "peak": {"peak"},
    "noisy": {"noise floor"},
}


@pytest.fixture(scope="module")
def acx_files(voice, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("acx")
    return {name: narration(d / f"{name}.wav", voice, **kw) for name, kw in ACX_FILES.items()}


@pytest.mark.parametrize("name", list(ACX_FILES))
def test_acx_each_criterion_passes_and_fails(acx_files, name):
    m = delivery.measure_file(acx_files[name])
    c = delivery.check(m, delivery.PRESETS["acx"])
    assert [k.name for k in c.criteria] == ["RMS", "peak", "noise floor"]
    assert {k.name for k in c.failed} == ACX_FAILS[name], c.criteria
    assert c.passed == (name == "passes")
    by = {k.name: k for k in c.criteria}
    kw = ACX_FILES[name]
    assert by["RMS"].measured == pytest.approx(kw.get("rms_dbfs", -20.0), abs=0.05)
    assert by["noise floor"].measured == pytest.approx(kw.get("floor_dbfs", -68.0), abs=1.0)
    if name == "peak":
        assert by["peak"].measured == pytest.approx(-1.0, abs=0.01)
    assert by["RMS"].limit == "-23 … -18 dBFS" and by["peak"].limit == "≤ -3 dBFS"
    json.dumps(c.to_dict())  # JSON-safe


def test_cli_check_table_and_exit_codes(acx_files, tmp_path, capsys):
    assert cli.main(["check", str(acx_files["passes"]), "--spec", "acx"]) == 0
    out = capsys.readouterr().out
    assert "passes.wav — ACX (Audible audiobooks)" in out and "→ PASS" in out
    assert out.count(" pass\n") == 3
    report = tmp_path / "acx.json"
    files = [str(acx_files["passes"]), str(acx_files["noisy"])]
    assert cli.main(["check", *files, "--spec", "ACX", "--json", str(report)]) == 1
    out = capsys.readouterr().out
    noisy = out[out.index("noisy.wav") :]
    assert "noise floor" in noisy and "FAIL" in noisy and "→ FAIL (1 of 3 criteria)" in noisy
    doc = json.loads(report.read_text())
    passed = {Path(f["source"]).name: f["passed"] for f in doc["files"]}
    assert passed == {"passes.wav": True, "noisy.wav": False} and doc["spec"]["name"] == "acx"
    # a preset with a limit overridden from the command line
    assert cli.main(["check", str(acx_files["noisy"]), "--spec", "acx", "--noise-floor", "-45"]) == 0
    capsys.readouterr()


def test_cli_check_reports_the_active_speech_level(tmp_path, capsys):
    """Two 4 s bursts of a -20 dBFS tone, 4 s apart (stereo, 44.1 kHz): active half the time
    plus each burst's hangover and envelope decay (0.2 s + ~0.05 s), so P.56 reads the bursts'
    energy over that active time, 0.2 dB under -20 dBFS; the RMS reads 3 dB lower still."""
    t = np.arange(4 * SR) / SR
    burst = math.sqrt(2) * 10 ** (-20 / 20) * np.sin(2 * np.pi * 1000 * t)
    x = np.concatenate([burst, np.zeros(4 * SR), burst, np.zeros(4 * SR)])
    path = tmp_path / "bursts.wav"
    sf.write(str(path), np.stack([x, x], axis=1), SR, subtype="PCM_24")
    report = tmp_path / "bursts.json"
    assert cli.main(["check", str(path), "--spec", "ebu-r128", "--json", str(report)]) == 1  # too quiet
    out = capsys.readouterr().out
    values = json.loads(report.read_text())["files"][0]["values"]
    level, activity = values["asl_dbfs"], values["asl_activity"]
    assert 0.5 < activity <= 0.5 + 2 * 0.3 / 16
    assert level == pytest.approx(-20.0 + 10 * math.log10(0.5 / activity), abs=0.01)
    assert values["rms_dbfs"] == pytest.approx(-23.01, abs=0.01)  # the pauses count here
    assert "RMS -23.0 dBFS" in out and f"voice {level:.1f} dBFS (P.56, active {activity:.0%})" in out


def test_cli_check_usage_errors_and_bad_files(acx_files, tmp_path, capsys):
    good = str(acx_files["passes"])
    assert cli.main(["check", good]) == 2  # no spec
    assert "--spec NAME" in capsys.readouterr().err
    assert cli.main(["check", good, "--spec", "youtube"]) == 2
    err = capsys.readouterr().err
    assert "unknown spec 'youtube'" in err and all(name in err for name in delivery.PRESETS)
    assert cli.main(["check", "--spec", "acx"]) == 2  # no files
    capsys.readouterr()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00garbage" * 10)
    assert cli.main(["check", str(broken), good, "--spec", "acx"]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.wav" in errors[0] and "Traceback" not in captured.err
    assert "passes.wav" in captured.out and "→ PASS" in captured.out  # the batch went on
    assert cli.main(["check", "--list-specs"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in delivery.PRESETS)
    assert "-16 LUFS ±1 LU, true peak ≤ -1 dBTP" in listing


def test_presets_carry_the_platforms_numbers():
    p = delivery.PRESETS
    assert (p["apple-podcasts"].target_lufs, p["apple-podcasts"].true_peak_max_dbtp) == (-16.0, -1.0)
    assert (p["spotify"].target_lufs, p["spotify"].true_peak_max_dbtp) == (-14.0, -1.0)
    assert (p["ebu-r128"].target_lufs, p["ebu-r128"].true_peak_max_dbtp) == (-23.0, -1.0)
    assert (p["atsc-a85"].target_lufs, p["atsc-a85"].true_peak_max_dbtp) == (-24.0, -2.0)
    acx = p["acx"]
    assert (acx.rms_min_dbfs, acx.rms_max_dbfs, acx.sample_peak_max_dbfs, acx.noise_floor_max_dbfs) == (
        -23.0,
        -18.0,
        -3.0,
        -60.0,
    )
    assert acx.target_lufs is None and acx.target_rms_dbfs == -20.5
    assert (
        delivery.get_spec("EBU R128") is p["ebu-r128"] and delivery.get_spec("apple") is p["apple-podcasts"]
    )
    assert cli.PRESET_NAMES == tuple(p)  # the CLI's help lists them without importing core
    with pytest.raises(ValueError, match="unknown spec"):
        delivery.get_spec("nope")


def loud(**kw) -> Loudness:
    base = dict(
        integrated_lufs=-16.4,
        loudness_range_lu=5.0,
        rms_dbfs=-20.0,
        sample_peak_dbfs=-2.0,
        duration_s=60.0,
        true_peak_dbtp=-1.2,
    )
    return Loudness(**(base | kw))


def test_check_boundaries_on_a_plain_loudness():
    apple = delivery.PRESETS["apple-podcasts"]
    assert delivery.check(loud(), apple).passed
    assert delivery.check(loud(integrated_lufs=-17.0, true_peak_dbtp=-1.0), apple).passed  # edges pass
    c = delivery.check(loud(integrated_lufs=-17.05, true_peak_dbtp=-0.99), apple)
    assert [k.name for k in c.failed] == ["integrated loudness", "true peak"]
    assert c.criteria[0].limit == "-16 ±1 LUFS" and c.criteria[1].limit == "≤ -1 dBTP"
    short = delivery.check(loud(integrated_lufs=None, note=L.TOO_SHORT), apple)
    assert not short.passed and short.criteria[0].measured is None and short.criteria[0].note == L.TOO_SHORT
    speech = apple.with_(speech_only=True)
    c = delivery.check(loud(speech_integrated_lufs=-15.5, speech_duration_s=40.0), speech)
    assert c.passed and c.criteria[0].name == "speech loudness"
    c = delivery.check(loud(speech_duration_s=0.0), speech)
    assert not c.passed and c.criteria[0].note == "no speech detected"
    # the noise floor needs a measurement; without one it fails and says so
    c = delivery.check(loud(sample_peak_dbfs=-4.0), delivery.PRESETS["acx"])
    assert [k.name for k in c.failed] == ["noise floor"] and c.failed[0].note == "not measured"
    assert delivery.check(loud(sample_peak_dbfs=-4.0), delivery.PRESETS["acx"], noise_floor_dbfs=-65.0).passed
    custom = delivery.custom_spec(target_lufs=-19, true_peak_max_dbtp=-2, tolerance_lu=0.5)
    assert custom.summary() == "-19 LUFS ±0.5 LU, true peak ≤ -2 dBTP"
    assert not delivery.check(loud(), custom).passed


def test_noise_floor_definition():
    rng = np.random.default_rng(0)
    hiss = 10 ** (-70 / 20) * rng.standard_normal(SR * 3)  # -70 dBFS RMS
    floor, silence = delivery.noise_floor(audio.as_clip(hiss, SR))
    assert floor == pytest.approx(-70.0, abs=0.2) and not silence
    # inserted digital silence does not hide the hiss, but is reported
    gated = np.concatenate([np.zeros(SR * 2), hiss])
    floor, silence = delivery.noise_floor(audio.as_clip(gated, SR))
    assert floor == pytest.approx(-70.0, abs=0.5) and silence
    assert delivery.noise_floor(audio.as_clip(np.zeros(SR), SR)) == (-math.inf, True)
    edge = np.concatenate([np.zeros(SR), hiss[: SR // 4], np.zeros(SR)])  # no 0.5 s of room tone
    assert delivery.noise_floor(audio.as_clip(edge, SR)) == (None, True)
    assert delivery.noise_floor(audio.as_clip(hiss[: SR // 4], SR)) == (None, False)  # < 0.5 s


def test_speech_only_measurement_uses_the_vad(jfk_path):
    m = delivery.measure_file(jfk_path, speech=True)
    assert m.speech and m.loudness.speech_integrated_lufs is not None
    assert m.loudness.true_peak_dbtp == pytest.approx(-2.11, abs=0.05)
    again = L.measure(m.clip, trace=False, speech=delivery.detect_speech(m.clip))
    assert again.speech_integrated_lufs == pytest.approx(m.loudness.speech_integrated_lufs, abs=1e-9)
    assert delivery.measure_file(jfk_path).speech is None  # off unless asked: no model loaded
