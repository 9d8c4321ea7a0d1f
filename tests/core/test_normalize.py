"""Normalising real speech to every preset: one gain, the target reached or the reason said.

Outputs are re-measured from the written files by SpeechInt and by pyloudnorm (its "DeMan"
K-weighting, exact at every rate): within ±0.1 LU of the target, true peak at or below the
ceiling, rate, channels and sample type unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from speechint_desktop import cli
from speechint_desktop.core import audio, delivery, normalize
from speechint_desktop.core import loudness as L
from speechint_desktop.core import truepeak as T

EXTRA = Path(__file__).resolve().parents[2].parent / "shared" / "audio" / "extra"
LUFS_PRESETS = ["apple-podcasts", "spotify", "ebu-r128", "atsc-a85"]


def write(path: Path, x: np.ndarray, sr: int, subtype: str) -> Path:
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def at_lufs(x: np.ndarray, sr: int, lufs: float) -> np.ndarray:
    return x * 10 ** ((lufs - L.integrated_loudness(x, sr)) / 20)


@pytest.fixture(scope="module")
def inputs(jfk_path, tmp_path_factory) -> dict[str, Path]:
    """Real speech at two starting levels each, in two formats:

    - JFK, 44.1 kHz stereo 24-bit FLAC, at -33 and -14.5 LUFS;
    - two utterances of speechbrain's samples at 48 kHz stereo (the right channel quieter and
      3 ms late) 16-bit WAV, at -35 and -20 LUFS.
    """
    d = tmp_path_factory.mktemp("norm-in")
    jfk = audio.load_audio(jfk_path).samples.astype(np.float64)
    parts = []
    for name in ("sep_source2_2.wav", "sep_source1_3.wav"):
        p = EXTRA / "speech" / name
        if not p.exists():
            pytest.fail(f"missing real speech {p}")
        x, sr = sf.read(str(p), dtype="float32")
        parts += [audio.resample(x, sr, 48000), np.zeros(48000 // 2, np.float32)]
    mono = np.concatenate(parts).astype(np.float64)
    stereo = np.stack([mono, 0.7 * np.roll(mono, 144)], axis=1)
    return {
        "jfk-33": write(d / "jfk-33.flac", at_lufs(jfk, 44100, -33.0), 44100, "PCM_24"),
        "jfk-14": write(d / "jfk-14.flac", at_lufs(jfk, 44100, -14.5), 44100, "PCM_24"),
        "voice-35": write(d / "voice-35.wav", at_lufs(stereo, 48000, -35.0), 48000, "PCM_16"),
        "voice-20": write(d / "voice-20.wav", at_lufs(stereo, 48000, -20.0), 48000, "PCM_16"),
    }


def pyloudnorm_lufs(path: Path) -> float:
    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    return pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(x)


@pytest.mark.parametrize("preset", LUFS_PRESETS + ["acx"])
def test_real_speech_to_every_preset(inputs, preset, tmp_path):
    spec = delivery.PRESETS[preset]
    for key, src in inputs.items():
        r = normalize.normalize_file(src, spec, out_dir=tmp_path)
        out = Path(r.output)
        assert out.parent == tmp_path and out.name == src.name  # same name and format in --out
        before, after = sf.info(str(src)), sf.info(str(out))
        assert (after.samplerate, after.channels, after.subtype, after.format) == (
            before.samplerate,
            before.channels,
            before.subtype,
            before.format,
        )
        assert not r.limited and r.reached, (key, r.message())
        clip = audio.load_audio(out)
        loud = L.measure(clip, trace=False)
        if spec.target_lufs is not None:
            assert loud.integrated_lufs == pytest.approx(spec.target_lufs, abs=0.1), key
            assert pyloudnorm_lufs(out) == pytest.approx(spec.target_lufs, abs=0.1), key
            assert r.after == pytest.approx(loud.integrated_lufs, abs=0.005)
            assert T.true_peak_dbtp(clip.samples, clip.sample_rate) <= spec.true_peak_max_dbtp
        else:  # ACX: the middle of its RMS window, peaks below its limit
            assert loud.rms_dbfs == pytest.approx(spec.target_rms_dbfs, abs=0.1), key
            rms = 10 * np.log10(np.mean(sf.read(str(out), dtype="float64")[0] ** 2))
            assert rms == pytest.approx(spec.target_rms_dbfs, abs=0.1)
            assert loud.sample_peak_dbfs <= spec.sample_peak_max_dbfs
        assert r.compliance is not None
        failed = {k.name for k in r.compliance.failed}
        assert failed <= {"noise floor"}  # gain cannot lower a noise floor (the report says so)
        report = json.loads(Path(r.report).read_text())
        assert report["plan"]["gain_db"] == pytest.approx(r.plan.gain_db)
        assert report["after_loudness"]["true_peak_dbtp"] == pytest.approx(loud.true_peak_dbtp, abs=1e-6)
        assert report["limited"] is False and report["format"]["dithered"] == (after.subtype == "PCM_16")


def test_a_target_the_ceiling_forbids_is_reported_not_faked(ldc_path, tmp_path):
    """TIMIT's LDC93S1: -41 LUFS with peaks 20 dB above its loudness. Spotify's -14 LUFS would
    put its true peak at +6 dBTP: the gain stops at the -1 dBTP ceiling, and says so."""
    spec = delivery.PRESETS["spotify"]
    r = normalize.normalize_file(ldc_path, spec, out_dir=tmp_path)
    assert r.limited and not r.reached
    assert r.plan.limited_by == "true-peak ceiling -1 dBTP"
    assert r.plan.gain_db < r.plan.wanted_db - 5
    clip = audio.load_audio(r.output)
    loud = L.measure(clip, trace=False)
    tp = T.true_peak_dbtp(clip.samples, clip.sample_rate)
    assert -1.1 <= tp <= -1.0  # right at the ceiling, not over it
    assert loud.integrated_lufs == pytest.approx(r.after, abs=0.01)  # what was reached, measured
    assert loud.integrated_lufs == pytest.approx(r.plan.before + r.plan.gain_db, abs=0.02)
    assert loud.integrated_lufs < -20  # no limiter, no compressor: far from -14
    assert "limited by the true-peak ceiling -1 dBTP" in r.message() and "not -14" in r.message()
    assert not r.compliance.passed and r.compliance.failed[0].name == "integrated loudness"
    report = json.loads(Path(r.report).read_text())
    assert report["limited"] is True and report["reached"] is False
    assert report["plan"]["limited_by"] == "true-peak ceiling -1 dBTP"
    # through the CLI: the file is written, the warning says what was reached, exit 1
    assert cli.main(["normalize", str(ldc_path), "--spec", "spotify", "--out", str(tmp_path / "cli")]) == 1


def test_plan_gain_caps():
    spec = delivery.PRESETS["apple-podcasts"]
    base = dict(loudness_range_lu=None, rms_dbfs=-25.0, duration_s=10.0)
    free = normalize.plan_gain(L.Loudness(-20.0, sample_peak_dbfs=-8.0, true_peak_dbtp=-7.5, **base), spec)
    assert free.gain_db == pytest.approx(4.0) and free.limited_by is None
    capped = normalize.plan_gain(L.Loudness(-20.0, sample_peak_dbfs=-3.5, true_peak_dbtp=-3.0, **base), spec)
    assert capped.gain_db == pytest.approx(2.0 - normalize.HEADROOM_DB) and capped.limited_by.startswith(
        "true-peak"
    )
    over = normalize.plan_gain(L.Loudness(-16.0, sample_peak_dbfs=-0.5, true_peak_dbtp=0.5, **base), spec)
    assert over.gain_db < -1.5 and over.limited_by  # already too hot: the ceiling lowers it
    custom = delivery.custom_spec(target_lufs=-10.0)  # no ceiling at all: still never clips
    nc = normalize.plan_gain(L.Loudness(-20.0, sample_peak_dbfs=-4.0, true_peak_dbtp=-3.0, **base), custom)
    assert (
        nc.gain_db == pytest.approx(4.0 - normalize.HEADROOM_DB) and nc.limited_by == "0 dBFS clipping limit"
    )
    with pytest.raises(ValueError, match="too short"):
        normalize.plan_gain(L.Loudness(None, note=L.TOO_SHORT, sample_peak_dbfs=-3.0, **base), spec)
    with pytest.raises(ValueError, match="no speech"):
        normalize.plan_gain(L.Loudness(-20.0, sample_peak_dbfs=-3.0, **base), spec.with_(speech_only=True))


def test_formats_dither_and_names(jfk_path, tmp_path):
    clip = audio.load_audio(jfk_path)
    x = clip.samples[: 44100 * 4] * 0.1
    cases = {
        "float.wav": ("FLOAT", "WAV", "FLOAT"),
        "pcm24.wav": ("PCM_24", "WAV", "PCM_24"),
        "pcm8.wav": ("PCM_U8", "WAV", "PCM_U8"),
        "aiff.aiff": ("PCM_16", "WAV", "PCM_16"),
        "lossy.ogg": ("VORBIS", "FLAC", "PCM_24"),
        "flac16.flac": ("PCM_16", "FLAC", "PCM_16"),
    }
    spec = delivery.PRESETS["ebu-r128"]
    # what a normalisation killed mid-write leaves (atomic_path's temporary name): the next one removes it
    killed = tmp_path / ".float-ebu-r128.wav.k1ll3d__.tmp"
    killed.write_bytes(b"half a file")
    for name, (sub, fmt, out_sub) in cases.items():
        src = write(tmp_path / name, x, 44100, sub)
        r = normalize.normalize_file(src, spec)  # no out_dir: beside the input, named for the spec
        out = Path(r.output)
        assert out.parent == tmp_path and out.stem == f"{src.stem}-ebu-r128"
        info = sf.info(str(out))
        assert (info.format, info.subtype, info.samplerate, info.channels) == (fmt, out_sub, 44100, 2), name
        assert (r.format["note"] is not None) == (name in ("aiff.aiff", "lossy.ogg"))
        if name != "pcm8.wav":  # 8 bits hold -23 LUFS only to within their coarse steps
            assert L.measure(audio.load_audio(out), trace=False).integrated_lufs == pytest.approx(
                -23, abs=0.1
            )
        assert src.read_bytes() == (tmp_path / name).read_bytes()
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_16_bit_output_is_tpdf_dithered(tmp_path):
    """The rounding error of a dithered 16-bit output is TPDF + rounding: 0.5 LSB RMS (plain
    rounding would be 0.29 LSB), uncorrelated with the signal."""
    sr = 48000
    t = np.arange(sr * 3) / sr
    x = 0.25 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))
    src = write(tmp_path / "tone.wav", np.round(x * 32768) / 32768, sr, "PCM_16")
    r = normalize.normalize_file(src, delivery.custom_spec(target_lufs=-30.0, true_peak_max_dbtp=-1.0))
    y = sf.read(r.output, dtype="int16")[0].astype(np.float64)
    ideal = sf.read(str(src), dtype="float64")[0] * 10 ** (r.plan.gain_db / 20) * 32768
    err = y - ideal
    assert np.sqrt(np.mean(err**2)) == pytest.approx(0.5, abs=0.03)
    assert abs(np.corrcoef(err, ideal)[0, 1]) < 0.02
    again = normalize.normalize_file(src, delivery.custom_spec(target_lufs=-30.0, true_peak_max_dbtp=-1.0))
    assert Path(again.output).read_bytes() == Path(r.output).read_bytes()  # seeded: reproducible


def test_speech_only_normalisation(jfk_path, tmp_path):
    spec = delivery.PRESETS["apple-podcasts"].with_(speech_only=True)
    r = normalize.normalize_file(jfk_path, spec, out_dir=tmp_path)
    assert r.plan.reference == "speech loudness" and r.reached
    m = delivery.measure_file(r.output, speech=True)  # speech detected afresh on the output
    assert m.loudness.speech_integrated_lufs == pytest.approx(-16.0, abs=0.1)
    assert r.after == pytest.approx(-16.0, abs=0.01)  # on the input's speech regions


def test_never_overwrites_the_input_unless_asked(tmp_path, capsys):
    sr = 44100
    x = 0.05 * np.random.default_rng(0).standard_normal((sr * 2, 1))
    src = write(tmp_path / "take.wav", x, sr, "PCM_24")
    original = src.read_bytes()
    with pytest.raises(normalize.NormalizeError, match="is the input; pass --overwrite"):
        normalize.normalize_file(src, delivery.PRESETS["ebu-r128"], out_dir=tmp_path)
    assert src.read_bytes() == original
    assert cli.main(["normalize", str(src), "--spec", "ebu-r128", "--out", str(tmp_path)]) == 1
    assert "pass --overwrite" in capsys.readouterr().err and src.read_bytes() == original
    code = cli.main(["normalize", str(src), "--spec", "ebu-r128", "--out", str(tmp_path), "--overwrite"])
    assert code == 0, capsys.readouterr().err
    assert src.read_bytes() != original
    assert L.integrated_loudness(sf.read(str(src))[0], sr) == pytest.approx(-23.0, abs=0.1)
    assert (tmp_path / "take.normalize.json").exists()


def test_cli_normalize_batch_with_a_bad_file(inputs, tmp_path, capsys):
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"fLaC" + b"\x00" * 50)
    out = tmp_path / "out"
    args = ["normalize", str(inputs["voice-20"]), str(broken), "--target", "-19", "--out", str(out)]
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.flac" in errors[0] and "Traceback" not in captured.err
    assert "voice-20.wav → " in captured.out and "-20.0 → -19.0 LUFS" in captured.out
    assert sorted(p.name for p in out.iterdir()) == ["voice-20.normalize.json", "voice-20.wav"]
    report = json.loads((out / "voice-20.normalize.json").read_text())
    assert report["spec"]["true_peak_max_dbtp"] == -1.0  # --target alone: a -1 dBTP ceiling
    assert cli.main(["normalize", str(inputs["voice-20"]), "--noise-floor", "-60"]) == 2  # nothing to aim for
    assert "no level to normalise to" in capsys.readouterr().err


def test_a_truncated_input_is_normalised_as_far_as_it_reads_and_said_so(inputs, tmp_path, capsys):
    """A copy cut off mid-file: the check and the normalisation say the input is incomplete
    (the output is as short as what decoded), on the line a user reads and in the report."""
    data = inputs["voice-20"].read_bytes()
    cut = tmp_path / "voice-cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    whole = sf.info(str(inputs["voice-20"])).duration
    m = delivery.measure_file(cut)
    assert m.note.startswith("only ") and f"of the {whole:.1f} s its header gives" in m.note
    r = normalize.normalize_file(cut, delivery.Spec("t", "t", target_lufs=-19.0), out_dir=tmp_path / "out")
    assert m.note.startswith(r.input_note) and r.input_note.endswith("the file is damaged or truncated")
    assert r.message().endswith(f"the input is incomplete, and so is the output: {r.input_note}")
    assert sf.info(r.output).duration == pytest.approx(m.info.duration_s, abs=1e-3)
    assert m.info.duration_s < whole - 1
    assert json.loads(Path(r.report).read_text())["input_note"] == r.input_note
    r = normalize.normalize_file(
        inputs["voice-20"], delivery.Spec("t", "t", target_lufs=-19.0), out_dir=tmp_path
    )
    assert r.input_note is None and "incomplete" not in r.message()
    assert cli.main(["check", str(cut), "--spec", "apple-podcasts"]) in (0, 1)
    assert f"  note: {m.note}" in capsys.readouterr().out


def test_batch_outputs_never_collide_or_replace_another_input(tmp_path, capsys):
    sr = 44100
    x = 0.05 * np.random.default_rng(1).standard_normal((sr * 2, 1))
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    other = write(tmp_path / "in" / "x.wav", x, sr, "PCM_16")
    inside = write(tmp_path / "out" / "x.wav", 0.5 * x, sr, "PCM_16")
    kept = inside.read_bytes()
    code = cli.main(
        ["normalize", str(other), str(inside), "--spec", "ebu-r128", "--out", str(tmp_path / "out")]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "is an input" in err and inside.read_bytes() == kept  # another input is not replaced
    # two lossy inputs that both become FLAC beside their inputs get distinct names
    for ext, sub in (("ogg", "VORBIS"), ("mp3", "MPEG_LAYER_III")):
        write(tmp_path / f"take.{ext}", x, sr, sub)
    code = cli.main(
        ["normalize", str(tmp_path / "take.ogg"), str(tmp_path / "take.mp3"), "--spec", "ebu-r128"]
    )
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.count("note: lossy/compressed input") == 2
    flacs = sorted(p.name for p in tmp_path.glob("*.flac"))
    assert flacs == ["take-ebu-r128.flac", "take_ogg-ebu-r128.flac"]
