"""Names, places and process settings, each said once: model names, resource and data folders,
the offline environment, and how to start this program again (source tree or frozen bundle).

Standard library only (platformdirs lazily), so the GUI, the launcher, the build script and the
training toolkit can all import it before torch or Qt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "SpeechInt"
DEFAULT_MODEL = "tiny.en"
CATALOG_MODELS = ("tiny.en", "base", "small")  # core.catalog.CATALOG's keys, in picker order
REPO_ROOT = Path(__file__).resolve().parents[2]  # the source tree (meaningless when frozen)

HOME_ENV = "SPEECHINT_HOME"  # overrides the user data folder (tests, portable installs)
THREADS_ENV = "SPEECHINT_THREADS"  # torch threads for analysis

# Set before torch/transformers load, by every entry point and for every child process: the app
# never downloads at run time and keeps library chatter out of the user's log.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def prepare_environment(environ: dict | None = None) -> None:
    """Fill ``OFFLINE_ENV`` into ``environ`` (default ``os.environ``) without overriding the user's."""
    env = os.environ if environ is None else environ
    for key, value in OFFLINE_ENV.items():
        env.setdefault(key, value)


MALLOC_ARENAS = 2


def limit_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (``M_ARENA_MAX``) before threads start: each thread that
    allocates (the app's worker, torch's) otherwise gets arenas of its own, whose freed space
    other threads cannot reuse (measured: the app's worker on a 10-min 48 kHz file peaked at
    1616 MB, at 1415 MB with two arenas; ``speechint analyze`` on a 1-h one, 745 MB against
    637 MB, no slower). ``$MALLOC_ARENA_MAX`` wins. False where there is no
    glibc (macOS, Windows)."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").mallopt(-8, int(n)))  # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        return False


_libc = None


def release_freed_memory() -> None:
    """Hand the heap's freed pages back to the system (glibc ``malloc_trim``; a no-op without
    glibc). CTranslate2's scratch buffers (the encoder's attention scores, the beams' states)
    are freed after every step but stay resident in the heap, fragmented, so the peak crept up
    with the number of batches: a 48 kHz stereo file peaked at 441 MB at 10 min and 489 MB at
    3 h without trimming after each step, 444 and 472 MB with it, for ~2 % more time (3 × 10
    min, 6 runs each: 18.3 → 18.7 s). Trimming at most every 5 s kept none of the gain."""
    global _libc
    if _libc is None:
        if not sys.platform.startswith("linux"):
            _libc = False
        else:
            try:
                import ctypes

                _libc = ctypes.CDLL("libc.so.6")
                _libc.malloc_trim  # noqa: B018 (musl has none)
            except (OSError, AttributeError):
                _libc = False
    if _libc:
        _libc.malloc_trim(0)


def frozen() -> bool:
    """Running from the PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def resources_dir() -> Path:
    """The repo's ``resources/`` (or the copy PyInstaller unpacks under ``sys._MEIPASS``)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle and (Path(bundle) / "resources").is_dir():
        return Path(bundle) / "resources"
    return REPO_ROOT / "resources"


def icons_dir() -> Path:
    return resources_dir() / "icons"


def heads_dir() -> Path:
    """Trained intensity heads shipped for catalogue models (``<name>.safetensors``)."""
    return resources_dir() / "heads"


def data_dir() -> Path:
    """Where converted models, runs, recordings and sessions live: ``$SPEECHINT_HOME`` or the
    platform's user data folder."""
    home = os.environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def runs_dir(home: Path | None = None) -> Path:
    return Path(home or data_dir()) / "runs"


def datasets_dir(home: Path | None = None) -> Path:
    return Path(home or data_dir()) / "datasets"


# The toolkit's sub-commands and the module each runs (``speechint train …`` / ``SpeechInt train …``).
TOOLKIT_COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("training.train", "fine-tune the multi-task model (transcript + intensity)"),
    "evaluate": ("training.evaluate", "measure WER and intensity error of a model"),
    "baseline": ("training.baseline", "the loudness-only and transcript-only baselines"),
    "demo-corpus": ("training.demo_corpus", "synthesise a small speech corpus with espeak-ng (offline)"),
    "voice-head": ("training.voice_head", "train the voice-level head: clean speech mixed with noise"),
}


def toolkit_command(command: str, args: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The argv that runs a toolkit sub-command in a child process, the one place that knows how:
    from source ``python -m speechint_desktop.cli COMMAND …``; frozen, the bundle's own executable
    ``SpeechInt COMMAND …`` (its launcher routes the sub-command to the toolkit)."""
    if command not in TOOLKIT_COMMANDS:
        raise ValueError(f"unknown toolkit command {command!r} (one of {', '.join(TOOLKIT_COMMANDS)})")
    if frozen():
        return [sys.executable, command, *args]
    return [sys.executable, "-m", "speechint_desktop.cli", command, *args]


def child_environment(environ: dict | None = None) -> dict[str, str]:
    """The environment for a toolkit child process: offline, unbuffered, and (from source) able to
    import this tree's packages whatever the working folder."""
    env = dict(os.environ if environ is None else environ)
    prepare_environment(env)
    env["PYTHONUNBUFFERED"] = "1"
    if not frozen():
        path = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
    return env
