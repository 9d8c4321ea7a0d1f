"""The training loop on the tiny random Whisper: loss goes down, metrics.jsonl, kill -9 + resume, 2 processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]


def _args(model, dataset, out, *extra):
    return [
        "--model",
        str(model),
        "--dataset",
        str(dataset),
        "--output_dir",
        str(out),
        "--batch_size",
        "2",
        "--no_wer",
        "--max_new_tokens",
        "4",
        "--seed",
        "7",
        *map(str, extra),
    ]


def test_a_few_steps_reduce_the_loss_and_log_metrics(tiny_random_dir, two_clip_manifest, tmp_path):
    from training.train import main

    out = tmp_path / "run"
    rc = main(
        _args(
            tiny_random_dir,
            two_clip_manifest,
            out,
            "--max_steps",
            6,
            "--gain_db",
            0,
            "--lr",
            "3e-3",
            "--head_lr",
            "3e-2",
            "--eval_every",
            3,
            "--test_split",
            "",
        )
    )
    assert rc == 0
    recs = read_metrics(out / "metrics.jsonl")
    train = [r for r in recs if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4, 5, 6]
    for r in train:
        assert {"loss", "asr_loss", "intensity_loss", "lr", "samples_per_s", "epoch"} <= set(r)
    assert train[-1]["loss"] < 0.95 * train[0]["loss"]
    assert train[-1]["asr_loss"] < train[0]["asr_loss"]
    val = [r for r in recs if r["split"] == "validation"]
    assert [r["step"] for r in val] == [3, 6]
    assert {
        "loss",
        "asr_loss",
        "intensity_loss",
        "intensity_rmse",
        "intensity_mae",
        "intensity_r2",
        "wer",
    } <= set(val[0])
    assert val[-1]["loss"] < val[0]["loss"]
    assert recs[0]["split"] == "config" and recs[-1]["split"] == "done"
    ckpt = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert ckpt["step"] == 6 and (out / "checkpoints" / ckpt["path"] / "model.safetensors").is_file()
    assert (out / "checkpoints" / "best.json").is_file()
    assert not list((out / "checkpoints").rglob("*.bin")) and not list((out / "checkpoints").rglob("*.pt"))


def test_head_only_trains_only_the_head(tiny_random_dir, demo_corpus, tmp_path):
    from speechint_desktop.core.model import WhisperForASRAndIntensity
    from training.train import main

    out = tmp_path / "head"
    assert (
        main(_args(tiny_random_dir, demo_corpus, out, "--max_steps", 2, "--head_only", "--test_split", ""))
        == 0
    )
    before = WhisperForASRAndIntensity.from_pretrained(tiny_random_dir).state_dict()
    ckpt = out / "checkpoints" / json.loads((out / "checkpoints" / "latest.json").read_text())["path"]
    after = WhisperForASRAndIntensity.from_pretrained(ckpt)
    for k, v in after.state_dict().items():
        if k.startswith("intensity_head."):
            continue
        assert torch.equal(v, before[k]), k
    assert not torch.equal(after.intensity_head.fc2.weight, before["intensity_head.fc2.weight"])
    assert after.config.intensity_head_trained
    train = [r for r in read_metrics(out / "metrics.jsonl") if r["split"] == "train"]
    assert train[0].get("asr_loss") is None and train[0]["intensity_loss"] is not None


def _run_training(args) -> subprocess.CompletedProcess:
    """``python -m training.train ARGS`` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "training.train", *args],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


def _env():
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO))


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(tiny_random_dir, demo_corpus, tmp_path):
    # 10 training clips, batch 2: 5 steps per epoch, so the run crosses an epoch boundary
    common = ["--max_steps", 8, "--save_every", 2, "--eval_every", 100, "--test_split", "", "--lr", "1e-3"]
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    cmd = [sys.executable, "-m", "training.train"]
    done = _run_training(_args(tiny_random_dir, demo_corpus, ref, *common))
    assert done.returncode == 0, done.stderr[-2000:]

    proc = subprocess.Popen(
        cmd + _args(tiny_random_dir, demo_corpus, cut, *common),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latest = cut / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if latest.is_file() and json.loads(latest.read_text())["step"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed_at = json.loads(latest.read_text())["step"]
    assert 2 <= killed_at < 8
    assert not any(r["split"] == "done" for r in read_metrics(cut / "metrics.jsonl"))

    resumed = _run_training(_args(tiny_random_dir, demo_corpus, cut, *common, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from step-{killed_at:07d}: step {killed_at}" in resumed.stderr

    def losses(d):
        return {r["step"]: r["loss"] for r in read_metrics(d / "metrics.jsonl") if r["split"] == "train"}

    a, b = losses(ref), losses(cut)
    assert sorted(b) == list(
        range(1, 9)
    )  # records written after the checkpoint by the killed run were dropped
    for step in range(killed_at + 1, 9):
        assert b[step] == pytest.approx(a[step], rel=1e-5, abs=1e-6), step

    def final(d):
        p = d / "checkpoints" / json.loads((d / "checkpoints" / "latest.json").read_text())["path"]
        return (
            load_file(str(p / "optimizer.safetensors")),
            json.loads((p / "state.json").read_text()),
            load_file(str(p / "model.safetensors")),
        )

    (oa, sa, ma), (ob, sb, mb) = final(ref), final(cut)
    assert sa["train_state"] == sb["train_state"]  # same step, epoch and data position
    assert (
        sa["train_state"]["step"] == 8
        and sa["train_state"]["epoch"] == 1
        and sa["train_state"]["batch_in_epoch"] == 3
    )
    assert sa["scheduler"] == sb["scheduler"]
    for k in oa:
        if k.startswith("state."):
            torch.testing.assert_close(ob[k], oa[k], rtol=1e-4, atol=1e-7)
    for k in ma:
        torch.testing.assert_close(mb[k], ma[k], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tiny_random_dir, demo_corpus, tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("this test checks two CPU processes")
    out = tmp_path / "ddp"
    # accelerate 1.15: `--cpu` alone starts one process (more need MPI); `--multi_gpu` starts them with
    # torchrun, and on a machine without a GPU the training script asks for CPU, i.e. MULTI_CPU over gloo.
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "training.train",
    ]
    r = subprocess.run(
        launcher
        + _args(
            tiny_random_dir, demo_corpus, out, "--max_steps", 3, "--eval_every", 3, "--test_split", "test"
        ),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    recs = read_metrics(out / "metrics.jsonl")
    assert recs[0]["split"] == "config" and recs[0]["processes"] == 2
    train = [r for r in recs if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3]  # written once, by the main process
    assert train[-1]["samples_seen"] == 3 * 2 * 2  # two processes × batch 2 per step
    assert [r["split"] for r in recs].count("validation") == 1 and [r["split"] for r in recs].count(
        "test"
    ) == 1
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 3
