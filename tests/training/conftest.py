"""Training fixtures: a small espeak-ng demo corpus and manifests over it (made once per session)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory) -> Path:
    from training.demo_corpus import make_corpus

    out = tmp_path_factory.mktemp("demo") / "corpus"
    make_corpus(out, n=12, seed=0)
    return out


@pytest.fixture(scope="session")
def two_clip_manifest(demo_corpus, tmp_path_factory) -> Path:
    """A CSV manifest with two training clips: every batch of 2 is the same batch."""
    d = tmp_path_factory.mktemp("manifest")
    with open(demo_corpus / "train" / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:2]
    path = d / "two.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["audio", "text"])
        for r in rows:
            w.writerow([str(demo_corpus / "train" / r["file_name"]), r["transcription"]])
    return path


def module_cmd(module: str, *args: str, launcher: list[str] | None = None) -> list[str]:
    return (launcher or [sys.executable, "-m"]) + [module, *map(str, args)]


def module_env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONPATH=str(REPO))


@pytest.fixture(scope="session")
def run_module():
    """Run ``python -m module args`` from the repo (or under ``launcher``), capturing output."""

    def run(module: str, *args, timeout: float = 900, launcher: list[str] | None = None):
        return subprocess.run(
            module_cmd(module, *args, launcher=launcher),
            cwd=REPO,
            env=module_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def read_jsonl():
    def read(path) -> list[dict]:
        return [json.loads(line) for line in Path(path).read_text().splitlines()]

    return read
