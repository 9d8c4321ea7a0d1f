"""The CTranslate2 path (``core.ct2``): stored form, segment slicing, the fallback rules, and the
engine on it against the transformers engine and against itself batched."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from speechint_desktop.core import ct2
from speechint_desktop.core.options import TranscribeOptions

TB = 50363
TOK = ct2.Tokens(sot=50257, eos=50256, no_timestamps=50362, timestamp_begin=TB, prev=50360, vocab_size=51864)


def ts(seconds: float) -> int:
    return TB + round(seconds * 50)


# --- segments from timestamp tokens (openai-whisper's slicing) ------------------------------


def test_segments_from_pairs_single_ending_and_open_text():
    pairs = [ts(0), 10, 11, ts(2.4), ts(2.4), 12, ts(5.0), ts(5.0)]
    assert ct2.segments(pairs, TOK, 9.0) == [(0.0, 2.4, [10, 11]), (2.4, 5.0, [12])]
    single = [ts(0.5), 10, ts(3.0)]
    assert ct2.segments(single, TOK, 9.0) == [(0.5, 3.0, [10])]
    # text never closed by a timestamp runs to the window's end
    assert ct2.segments([ts(1.0), 10, 11], TOK, 7.5) == [(1.0, 7.5, [10, 11])]
    # no timestamps at all: one segment over the window; special tokens are not text
    assert ct2.segments([10, TOK.no_timestamps, 11], TOK, 4.0) == [(0.0, 4.0, [10, 11])]
    assert ct2.segments([], TOK, 4.0) == []
    assert ct2.segments([ts(0), ts(1.0)], TOK, 4.0) == []


# --- the fallback rules -----------------------------------------------------------------------


def test_fallback_and_silence_rules_follow_openai_whisper():
    opts = TranscribeOptions()
    loop = [10, 11, 12] * 40
    assert ct2.compression_ratio(loop, TOK.vocab_size) > 2.4 > ct2.compression_ratio(list(range(40)), 51864)
    fine = ct2.Decoded(list(range(40)), -0.3, 0.01, 0.0, 1.2)
    repeated = ct2.Decoded(loop, -0.1, 0.01, 0.0, 5.0)
    improbable = ct2.Decoded(list(range(40)), -1.5, 0.1, 0.0, 1.2)
    silence = ct2.Decoded([10], -1.5, 0.9, 0.0, 0.5)
    assert not ct2.needs_fallback(fine, opts)
    assert ct2.needs_fallback(repeated, opts) and ct2.needs_fallback(improbable, opts)
    # the model says no speech and the text is improbable: skipped, not decoded again
    assert ct2.silent(silence, opts) and not ct2.needs_fallback(silence, opts)
    assert not ct2.silent(ct2.Decoded([10], -0.2, 0.9, 0.0, 0.5), opts)  # probable text stays
    off = opts.with_(compression_ratio_threshold=None, logprob_threshold=None)
    assert not ct2.needs_fallback(repeated, off) and not ct2.silent(silence, off)


# --- the stored form --------------------------------------------------------------------------


def test_stored_form_is_converted_once_and_again_when_the_weights_change(
    tiny_random_dir, tmp_path, monkeypatch
):
    import shutil

    monkeypatch.setenv("SPEECHINT_HOME", str(tmp_path / "home"))
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_random_dir, ckpt)
    said = []
    first = ct2.stored_form(ckpt, said.append)
    assert (first / "model.bin").is_file() and said
    said.clear()
    assert ct2.stored_form(ckpt, said.append) == first and not said  # kept: no conversion
    weights = ckpt / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    second = ct2.stored_form(ckpt, said.append)
    assert second != first and said and (second / "model.bin").is_file()
    assert not [p for p in second.parent.iterdir() if p.name.endswith(".partial")]
    # tiny.en's alignment heads (layers up to 3, heads up to 5) mostly do not exist in this
    # 2-layer, 2-head model: CTranslate2 would read past its layers; only [1, 0] is kept
    heads = json.loads((second / "config.json").read_text())["alignment_heads"]
    assert heads == [[1, 0]]
    # a form written beside the model (at install, or in the app bundle) is used as it is,
    # unless an older conversion wrote it
    beside = ct2.write_beside(ckpt, "float16")
    assert ct2.stored_form(ckpt, said.append) == beside
    (beside / ct2.VERSION_FILE).write_text(json.dumps({"form_version": 0}))
    assert ct2.stored_form(ckpt) == second
    # the CPU default's form holds int8 weights (half the bytes), converted and kept apart
    said.clear()
    int8 = ct2.stored_form(ckpt, said.append, "int8")
    assert int8 not in (first, second) and said
    assert (int8 / "model.bin").stat().st_size < 0.7 * (second / "model.bin").stat().st_size
    beside8 = ct2.write_beside(ckpt)  # what install writes: the int8 form
    assert beside8.name == "ct2-int8" and ct2.stored_form(ckpt, quantization="int8") == beside8
    assert ct2.stored_form(ckpt, quantization="float16") == second  # its beside form is outdated
    assert ct2.quantization_for("int8") == "int8" and ct2.quantization_for("float32") == "float16"
    with pytest.raises(ValueError, match="unknown stored precision"):
        ct2.stored_form(ckpt, quantization="int4")


def test_ct2_encoder_matches_transformers_on_a_random_model(tiny_random_dir, tmp_path, monkeypatch):
    """The converter carries every weight over: float32 CTranslate2 and transformers agree."""
    import torch

    from speechint_desktop.core.model import WhisperForASRAndIntensity

    monkeypatch.setenv("SPEECHINT_HOME", str(tmp_path / "home"))
    folder = ct2.stored_form(tiny_random_dir)
    model = ct2.Ct2Whisper(folder, "cpu", 0, "float32", 1, TOK)
    rng = np.random.default_rng(0)
    feats = rng.uniform(-0.5, 1.0, size=(2, 80, 3000)).astype(np.float32)
    hidden = model.encode(feats)
    ref = WhisperForASRAndIntensity.from_pretrained(tiny_random_dir).eval()
    with torch.inference_mode():
        expected = ref.model.encoder(torch.from_numpy(feats)).last_hidden_state.numpy()
    # the stored form is float16: weights rounded to 11 bits
    assert np.abs(hidden - expected).max() < 0.05 * np.abs(expected).max()
    assert hidden.shape == expected.shape


# --- the engine on CTranslate2, real tiny.en --------------------------------------------------


@pytest.fixture(scope="module")
def engines(tiny_en_dir):
    from speechint_desktop.core.engine import Engine

    fast = Engine(str(tiny_en_dir), device="cpu", threads=2, head=False, backend="ct2")
    slow = Engine(str(tiny_en_dir), device="cpu", threads=2, head=False, backend="torch")
    return fast, slow


def test_the_stored_int8_form_decodes_exactly_as_float16_quantised_at_load(tiny_en_dir, jfk_path, ldc_path):
    """The CPU default loads a stored int8 form (fast start); it must give the very encoder
    states and tokens of the float16 form quantised at load (what faster-whisper runs): the
    converter's int8 would also quantise the input convolutions, which moves the states."""
    import ctranslate2

    from speechint_desktop.core import audio, mel

    clips = [audio.to_model_input(audio.load_audio(p)) for p in (jfk_path, ldc_path)]
    features = ctranslate2.StorageView.from_array(mel.log_mel(clips, config=mel.settings(tiny_en_dir)))
    out = []
    for quantization in ("int8", "float16"):
        folder = ct2.stored_form(tiny_en_dir, quantization=quantization)
        m = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="int8", intra_threads=2)
        states = np.array(m.encode(features, to_cpu=True))
        tokens = [r.sequences_ids[0] for r in m.generate(features, [[TOK.sot]] * 2, beam_size=1)]
        out.append((states, tokens, (folder / "model.bin").stat().st_size))
    (s8, t8, size8), (s16, t16, size16) = out
    np.testing.assert_array_equal(s8, s16)
    assert t8 == t16 and len(t8[0]) > 10
    assert size8 < 0.65 * size16


def test_ct2_engine_matches_transformers_words_and_times(engines, jfk_path, ldc_path):
    from speechint_desktop.core.text import wer
    from tests.conftest import JFK_TEXT, LDC_TEXT

    fast, slow = engines
    assert fast.backend == "ct2" and slow.backend == "torch"
    # greedy: both backends then take the same argmax at every step (a beam search can keep
    # another of two near-equal hypotheses on int8 than on float32); both read 30 s windows
    greedy = fast.options.with_(beam_size=1, fit_windows=False)
    for path, ref in ((jfk_path, JFK_TEXT), (ldc_path, LDC_TEXT)):
        a, b = fast.analyze(path, options=greedy), slow.analyze(path, options=greedy)
        assert wer([ref], [a.text]) <= wer([ref], [b.text]) + 0.05, (a.text, b.text)
        wa = [w for s in a.segments for w in s.words]
        wb = [w for s in b.segments for w in s.words]
        assert wa and [w.text for w in wa] == [w.text for w in wb], (a.text, b.text)
        # same alignment heads and DTW: word starts agree to a few 20 ms frames
        assert max(abs(x.start - y.start) for x, y in zip(wa, wb, strict=True)) <= 0.1
        for s in a.segments:
            assert s.start <= s.end and all(
                s.start - 1e-6 <= w.start <= w.end <= s.end + 1e-6 for w in s.words
            )


def test_ct2_batched_windows_give_the_same_text_as_one_at_a_time(engines, tmp_path, jfk_path, ldc_path):
    from speechint_desktop.core import audio
    from tests.conftest import espeak

    fast, _ = engines
    files = [jfk_path, ldc_path]
    files += [
        espeak(t, tmp_path / f"{i}.wav")
        for i, t in enumerate(("Bring me the red box.", "It rained all day."))
    ]
    chunks = [audio.to_model_input(audio.load_audio(f)) for f in files]
    opts = fast.options
    together, _, _ = fast._generate(chunks, opts, lambda f: None)
    for row, chunk in enumerate(chunks):
        alone, _, _ = fast._generate([chunk], opts, lambda f: None)
        assert [s.tokens for s in together if s.row == row] == [s.tokens for s in alone]


def test_two_cpu_streams_give_the_states_words_and_timings_of_one(
    engines, tmp_path, jfk_path, ldc_path, monkeypatch
):
    """On a CPU a batch runs as two halves side by side (``Ct2Whisper.streams``); the rows are
    independent, so encoder states, greedy tokens and word alignments are those of one stream.
    After each step the freed scratch memory goes back to the system."""
    from speechint_desktop.core import audio, mel
    from tests.conftest import espeak

    trims = []
    monkeypatch.setattr(ct2, "release_freed_memory", lambda: trims.append(1))

    fast, _ = engines
    two = fast._ct2
    assert two.streams == 2
    one = ct2.Ct2Whisper(ct2.stored_form(fast.model_path, quantization="int8"), "cpu", 0, "int8", 1, two.tok)
    assert one.streams == 1
    files = [jfk_path, ldc_path, espeak("Bring me the red box.", tmp_path / "a.wav")]
    chunks = [audio.to_model_input(audio.load_audio(f)) for f in files]
    features = mel.log_mel(chunks, config=mel.settings(fast.model_path))
    hidden = [m.encode(features) for m in (two, one)]
    np.testing.assert_array_equal(hidden[0], hidden[1])
    prompts = [[TOK.sot]] * len(files)
    greedy = [[d.tokens for d in m.decode(hidden[0], prompts)] for m in (two, one)]
    assert greedy[0] == greedy[1] and all(greedy[0])
    texts = [[t for t in g if t < TOK.eos] for g in greedy[0]]
    frames = [len(c) // 160 for c in chunks]
    rows = [2, 0, 1]  # any rows, in any order
    aligned = [
        m.align(hidden[0], rows, [TOK.sot], [texts[r] for r in rows], [frames[r] for r in rows])
        for m in (two, one)
    ]
    assert aligned[0] == aligned[1] and all(a for _, a in aligned[0])
    assert len(trims) == 6  # encode, decode and align, on each model
    # language detection takes the same float32 states (tiny.en has no language to find)
    with pytest.raises(RuntimeError, match="multilingual"):
        two.detect_language(hidden[0][:1])


def test_ct2_rejected_windows_go_on_through_the_seeded_sampled_fallback(engines, jfk_path):
    """A log-probability bar no greedy result passes: the window is flagged and sampled at the
    next temperatures (seeded by its audio, on a fresh CTranslate2 instance), so the same audio
    gives the same words in every run, whatever ran before; transformers is never loaded."""
    from speechint_desktop.core import audio

    fast, _ = engines
    chunk = audio.to_model_input(audio.load_audio(jfk_path))
    strict = fast.options.with_(
        temperatures=(0.0, 0.5, 1.0), logprob_threshold=-0.0001, no_speech_threshold=None
    )
    sample = fast._ct2.sample
    tried = []

    def spy(enc_row, prompt, temperature, seed):
        d = sample(enc_row, prompt, temperature, seed)
        tried.append((temperature, d.tokens))
        return d

    fast._ct2.sample = spy
    runs = []
    try:
        for _ in range(2):
            tried.clear()
            flagged: set[int] = set()
            segs, _, _ = fast._generate([chunk], strict, lambda f: None, None, flagged)
            assert flagged == {0} and [t for t, _ in tried] == [0.5, 1.0]
            assert segs and all(s.words for s in segs)
            runs.append(([s.tokens for s in segs], list(tried)))
            # another window sampled in between must not change this one's draws
            other = fast.options.with_(temperatures=(0.0, 1.0), logprob_threshold=-0.0001)
            fast._generate([chunk[: len(chunk) // 2]], other, lambda f: None)
    finally:
        del fast._ct2.sample
    assert runs[0] == runs[1]
    ok, _, _ = fast._generate([chunk], fast.options, lambda f: None, None, flagged := set())
    assert not flagged and all(s.temperature == 0.0 for s in ok)
    assert fast._whisper is None


def test_ct2_engine_with_a_trained_head_reads_the_same_level_as_transformers(tiny_en_dir, jfk_path):
    from speechint_desktop.core.engine import Engine

    fast = Engine(str(tiny_en_dir), device="cpu", threads=2, backend="ct2")
    slow = Engine(str(tiny_en_dir), device="cpu", threads=2, backend="torch")
    if not fast.head_trained:
        pytest.skip("no shipped head for tiny.en")
    a, b = fast.analyze(jfk_path), slow.analyze(jfk_path)
    assert a.predicted_intensity == pytest.approx(b.predicted_intensity, abs=0.3)
    assert a.head_intensity == pytest.approx(b.head_intensity, abs=0.3)


def test_alignment_heads_that_do_not_exist_fall_back_to_the_upper_half(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"alignment_heads": [[3, 5], [2, 0]], "suppress_ids": [1]}))
    ct2._fit_alignment_heads(path, {"decoder_layers": 2, "decoder_attention_heads": 2})
    kept = json.loads(path.read_text())
    assert kept["alignment_heads"] == [[1, 0], [1, 1]] and kept["suppress_ids"] == [1]


def test_without_a_ctranslate2_form_auto_decodes_on_transformers(tiny_random_dir, ldc_path, monkeypatch):
    """No stored form and none can be made (a frozen app without the converter): ``auto`` says
    so in the log and decodes on transformers; ``ct2`` asked for by name is a one-line error."""
    from speechint_desktop.core.engine import Engine

    def broken(folder, progress=None, quantization="float16"):
        raise ImportError("no converter here")

    monkeypatch.setattr(ct2, "stored_form", broken)
    engine = Engine(str(tiny_random_dir), device="cpu", threads=1, head=False)
    assert engine.backend == "torch" and engine._whisper is not None
    assert engine.analyze(ldc_path).duration_s > 2
    with pytest.raises(ValueError, match="CTranslate2 could not load"):
        Engine(str(tiny_random_dir), device="cpu", threads=1, head=False, backend="ct2")
