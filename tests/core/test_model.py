"""The multi-task model on a tiny random Whisper: losses, valid-frame pooling, save/load."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import WhisperConfig, WhisperForConditionalGeneration

from speechint_desktop.core.model import (
    WhisperForASRAndIntensity,
    encoder_frames_for,
    head_inputs,
    load_head,
    pool_encoder,
    read_head_card,
    save_head,
)


def tiny_config(**kw) -> WhisperConfig:
    kw.setdefault("d_model", 32)
    return WhisperConfig(
        vocab_size=120,
        num_mel_bins=80,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=64,
        decoder_start_token_id=1,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        suppress_tokens=[],
        begin_suppress_tokens=[],
        **kw,
    )


@pytest.fixture
def model() -> WhisperForASRAndIntensity:
    torch.manual_seed(0)
    return WhisperForASRAndIntensity(tiny_config(intensity_hidden=16)).eval()


def features(batch: int = 2) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(batch, 80, 3000)


def test_encoder_frames_for():
    assert encoder_frames_for(16000) == 50
    assert encoder_frames_for(16001) == 51
    assert encoder_frames_for(0) == 1
    assert encoder_frames_for(30 * 16000) == 1500
    assert encoder_frames_for(45 * 16000) == 1500
    assert encoder_frames_for(44100, sr=44100) == 50


def test_defaults_on_a_plain_config():
    m = WhisperForASRAndIntensity(tiny_config())
    c = m.config
    assert (c.intensity_target, c.intensity_head_trained, c.intensity_hidden) == ("rms_dbfs", False, 256)
    assert c.intensity_std > 0
    with pytest.raises(ValueError, match="intensity_target"):
        WhisperForASRAndIntensity(tiny_config(intensity_target="loudness"))


def test_forward_losses_and_gradients_reach_the_head(model):
    model.train()
    labels = torch.tensor([[5, 6, 7, 2], [8, 9, 2, -100]])
    out = model(
        input_features=features(),
        labels=labels,
        intensity_labels=torch.tensor([-20.0, -40.0]),
        encoder_frames=torch.tensor([500, 1200]),
        lambda_intensity=0.5,
    )
    assert out.intensity.shape == (2,)
    for v in (out.loss, out.asr_loss, out.intensity_loss):
        assert torch.isfinite(v)
    assert torch.allclose(out.loss, out.asr_loss + 0.5 * out.intensity_loss)
    out.loss.backward()
    for p in model.intensity_head.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    # the intensity loss also trains the encoder (multi-task), not just the head
    assert model.model.encoder.layers[0].fc1.weight.grad.abs().sum() > 0


def test_intensity_loss_is_on_standardised_targets(model):
    out = model(input_features=features(), intensity_labels=torch.tensor([-20.0, -40.0]), encoder_frames=100)
    z = model.standardize(out.intensity)
    target = (torch.tensor([-20.0, -40.0]) - model.config.intensity_mean) / model.config.intensity_std
    assert torch.allclose(out.intensity_loss, torch.mean((z - target) ** 2), atol=1e-5)
    assert out.asr_loss is None and torch.allclose(out.loss, out.intensity_loss)


def test_pooling_ignores_padding_frames(model):
    hidden = torch.randn(1, 1500, 32)
    feats = features(1)
    altered, altered_feats = hidden.clone(), feats.clone()
    altered[:, 300:] = torch.randn(1, 1200, 32) * 5 + 3  # everything past the valid frames
    altered_feats[:, :, 600:] += 1.0  # the padding's mel frames, 10 dB louder
    a = model.predict_intensity(hidden, feats, 300)
    b = model.predict_intensity(altered, altered_feats, 300)
    assert torch.allclose(a, b, atol=1e-6)
    # whole-window pooling would see the change: the test above is not vacuous
    whole_a = model.predict_intensity(hidden, feats)
    assert not torch.allclose(whole_a, model.predict_intensity(altered, altered_feats), atol=1e-3)
    assert torch.allclose(pool_encoder(hidden, 300), hidden[:, :300].mean(1), atol=1e-6)


def test_head_inputs_carry_the_level_of_the_mel_frames():
    """A gain of g dB adds g/40 to Whisper's log-mel; the pooled band powers rise by exactly g dB."""
    hidden = torch.zeros(1, 1500, 4)
    feats = torch.rand(1, 80, 3000) - 1.0
    louder = feats + 6.0 / 40.0
    a = pool_encoder(head_inputs(hidden, feats), 200)
    b = pool_encoder(head_inputs(hidden, louder), 200)
    power_a, power_b = a[0, 4:84], b[0, 4:84]
    assert torch.allclose(10 * torch.log10(power_b / power_a), torch.full((80,), 6.0), atol=1e-3)
    assert torch.allclose(b[0, 84:164] - a[0, 84:164], torch.full((80,), 6.0 / 40.0), atol=1e-5)
    # the frames' generalised-mean levels (log10 mean p^k / k) all shift by exactly the gain
    from speechint_desktop.core.model import N_STATS, stat_levels

    assert a.shape[-1] == 4 + 160 + N_STATS
    shift = 10 * (stat_levels(b[0, 164:]) - stat_levels(a[0, 164:]))
    assert torch.allclose(shift, torch.full((N_STATS,), 6.0), atol=1e-3), shift


def test_pooling_per_batch_item():
    hidden = torch.randn(3, 1500, 8)
    pooled = pool_encoder(hidden, [10, 1500, 700])
    for i, n in enumerate([10, 1500, 700]):
        assert torch.allclose(pooled[i], hidden[i, :n].mean(0), atol=1e-5)


def test_forward_pools_valid_frames_from_the_attention_mask(model):
    feats = features(1)
    mask = torch.zeros(1, 3000, dtype=torch.long)
    mask[:, :800] = 1
    a = model(input_features=feats, attention_mask=mask, decoder_input_ids=torch.tensor([[1]]))
    hidden = a.encoder_last_hidden_state
    assert torch.allclose(a.intensity, model.predict_intensity(hidden, feats, 400), atol=1e-5)


def test_save_pretrained_round_trip(model, tmp_path):
    model.config.intensity_target = "lufs"
    model.config.intensity_mean = -25.5
    model.config.intensity_std = 7.0
    model.config.intensity_head_trained = True
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        assert any(k.startswith("intensity_head.") for k in f.keys())
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["intensity_target"] == "lufs" and cfg["intensity_head_trained"] is True

    loaded = WhisperForASRAndIntensity.from_pretrained(tmp_path, dtype=torch.float32).eval()
    c = loaded.config
    assert (
        c.intensity_target,
        c.intensity_mean,
        c.intensity_std,
        c.intensity_head_trained,
        c.intensity_hidden,
    ) == (
        "lufs",
        -25.5,
        7.0,
        True,
        16,
    )
    feats = features()
    dec = torch.tensor([[1, 5], [1, 6]])
    with torch.no_grad():
        a = model(input_features=feats, decoder_input_ids=dec, encoder_frames=[100, 900])
        b = loaded(input_features=feats, decoder_input_ids=dec, encoder_frames=[100, 900])
    assert torch.equal(a.intensity, b.intensity)
    assert torch.equal(a.logits, b.logits)


def test_plain_whisper_checkpoint_loads_with_untrained_head(tmp_path):
    torch.manual_seed(0)
    plain = WhisperForConditionalGeneration(tiny_config())
    plain.save_pretrained(tmp_path)
    loaded = WhisperForASRAndIntensity.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert loaded.config.intensity_head_trained is False
    assert loaded.head_trained is False
    for p in loaded.intensity_head.parameters():
        assert torch.isfinite(p).all()
    feats = features(1)
    dec = torch.tensor([[1, 5]])
    with torch.no_grad():
        a = plain.eval()(input_features=feats, decoder_input_ids=dec)
        b = loaded(input_features=feats, decoder_input_ids=dec)
    assert torch.allclose(a.logits, b.logits, atol=1e-6)  # Whisper weights unchanged
    assert torch.isfinite(b.intensity).all()


def test_save_head_load_head(model, tmp_path):
    model.config.intensity_mean = -33.0
    model.config.intensity_std = 8.0
    path = save_head(
        model, tmp_path / "heads" / "tiny.safetensors", card={"trained_on": "demo", "mae_db": 1.5}
    )
    card = read_head_card(path)
    assert card["card"] == {"trained_on": "demo", "mae_db": 1.5}
    assert card["d_model"] == "32"

    torch.manual_seed(5)
    other = WhisperForASRAndIntensity(tiny_config(intensity_hidden=8)).eval()  # different width
    assert other.config.intensity_head_trained is False
    meta = load_head(other, path)
    assert meta["card"]["trained_on"] == "demo"
    assert other.config.intensity_head_trained is True
    assert (other.config.intensity_mean, other.config.intensity_std, other.config.intensity_hidden) == (
        -33.0,
        8.0,
        16,
    )
    pooled = torch.cat(
        [torch.randn(4, 32), torch.rand(4, 80), torch.randn(4, 80), torch.rand(4, 6) + 0.1], dim=1
    )
    assert torch.allclose(model.head(pooled), other.head(pooled), atol=1e-6)
    with pytest.raises(ValueError, match="expects 198 pooled features"):
        model.head(torch.randn(4, 32))  # an encoder-only vector is refused, not misread

    # a voice-level head reads the frames' level statistics too; its metadata says so
    torch.manual_seed(6)
    voice = WhisperForASRAndIntensity(tiny_config(intensity_level_stats=6, intensity_target="voice_asl_dbfs"))
    with torch.no_grad():
        voice.intensity_head.skip.weight.normal_()
    vpath = save_head(voice, tmp_path / "voice.safetensors")
    assert read_head_card(vpath)["level_stats"] == "6"
    load_head(other, vpath)
    assert other.intensity_head.n_stats == 6 and other.config.intensity_target == "voice_asl_dbfs"
    assert torch.allclose(voice.head(pooled), other.head(pooled), atol=1e-6)
    load_head(other, path)  # and back to a head without them
    assert other.intensity_head.n_stats == 0 and torch.allclose(
        model.head(pooled), other.head(pooled), atol=1e-6
    )


def test_load_head_rejects_wrong_width_and_garbage(model, tmp_path):
    path = save_head(model, tmp_path / "h.safetensors")
    wide = WhisperForASRAndIntensity(tiny_config(d_model=64))
    with pytest.raises(ValueError, match="width 32"):
        load_head(wide, path)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="junk.safetensors"):
        load_head(model, junk)
    assert wide.config.intensity_head_trained is False


# --- load_model: one rule for finding and attaching the head -------------------------------------


def test_load_model_head_rules(tiny_random_dir, tmp_path):
    import json as _json

    from speechint_desktop.core import catalog, runs
    from speechint_desktop.core.model import load_model, shipped_head

    # a folder that is no catalogue model: no shipped head, the untrained head stays untrained
    plain = load_model(tiny_random_dir)
    assert not plain.model.head_trained and plain.head_file is None and plain.path == str(tiny_random_dir)
    assert shipped_head(tiny_random_dir) is None
    assert shipped_head("tiny.en") == catalog.head_path("tiny.en") is not None

    # an explicit head file is attached; a missing one is a one-line error
    plain.model.config.intensity_target = "lufs"
    head = save_head(plain.model, tmp_path / "h.safetensors")
    with_head = load_model(tiny_random_dir, head=head)
    assert with_head.model.head_trained and with_head.head_file == head
    assert with_head.model.config.intensity_target == "lufs"
    with pytest.raises(ValueError, match="no such head file"):
        load_model(tiny_random_dir, head=tmp_path / "missing.safetensors")

    # a training run folder loads its best checkpoint, whose own trained head is kept by "auto"
    run = tmp_path / "run"
    ckpt = runs.step_dir(run, 2)
    with_head.model.save_pretrained(ckpt)
    with_head.processor.save_pretrained(ckpt)
    runs.write_pointers(run, ckpt, 2, 0.5, is_best=True)
    from_run = load_model(run)
    assert from_run.path == str(ckpt) and from_run.model.head_trained and from_run.head_file is None
    assert _json.loads((ckpt / "config.json").read_text())["intensity_head_trained"] is True
    empty = tmp_path / "empty-run"
    (empty / "checkpoints").mkdir(parents=True)
    with pytest.raises(catalog.ModelError, match="no checkpoint yet"):
        load_model(empty)


def test_load_model_skips_a_shipped_head_that_does_not_fit(tiny_random_dir, monkeypatch, tmp_path):
    """A stale shipped head must not stop transcription: "auto" skips it and says why."""
    from speechint_desktop.core import head_np
    from speechint_desktop.core.model import load_model

    bad = tmp_path / "stale.safetensors"
    bad.write_bytes(b"not a head")
    monkeypatch.setattr(head_np, "shipped_head", lambda name, folder=None: bad)
    loaded = load_model(tiny_random_dir)
    assert not loaded.model.head_trained and "stale.safetensors" in loaded.head_note
    with pytest.raises(ValueError, match="stale.safetensors"):
        load_model(tiny_random_dir, head=bad)  # asked for by name: an error
    light = head_np.load_light(tiny_random_dir)  # the CTranslate2 engine's loader: the same rule
    assert not light.head_trained and "stale.safetensors" in light.head_note
    with pytest.raises(ValueError, match="stale.safetensors"):
        head_np.load_light(tiny_random_dir, head=bad)
