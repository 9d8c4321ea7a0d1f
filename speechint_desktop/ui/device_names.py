"""Audio devices by the names people know them by.

PortAudio's ALSA host lists the sound server as "pulse" and the system's choice as "default"; a
user looks for "Built-in Audio Analog Stereo" or "USB microphone". The sound server's own
description of its default source (``pactl``, PulseAudio or PipeWire) names "pulse"; hardware
names lose their ``(hw:1,0)`` suffix. Called on a pool thread (``pactl`` may take a moment).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

ALSA_ALIASES = {
    "default": "System default",
    "sysdefault": "System default (ALSA)",
    "pipewire": "PipeWire sound server",
}


def _pactl(*args: str) -> str:
    exe = shutil.which("pactl")
    if exe is None:
        return ""
    try:
        out = subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=2, env={**os.environ, "LC_ALL": "C"}
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout if out.returncode == 0 else ""


def server_default_source() -> str | None:
    """The description of the sound server's default input, e.g. "Built-in Audio Analog Stereo"."""
    info = _pactl("info")
    m = re.search(r"^Default Source:\s*(\S+)", info, re.M)
    if not m:
        return None
    name = m.group(1)
    desc = None
    for block in _pactl("list", "sources").split("\n\n"):
        if re.search(rf"^\s*Name:\s*{re.escape(name)}\s*$", block, re.M):
            d = re.search(r"^\s*Description:\s*(.+)$", block, re.M)
            desc = d.group(1).strip() if d else None
            break
    return desc or name


def human_name(name: str, server_source: str | None = None) -> str:
    """What the device list shows for PortAudio's ``name``."""
    if name == "pulse":
        return f"Sound server: {server_source}" if server_source else "Sound server (PulseAudio / PipeWire)"
    if name in ALSA_ALIASES:
        return ALSA_ALIASES[name]
    return re.sub(r"\s*\((hw|plughw):\d+,\d+\)$", "", name) or name
