"""Where the model runs: CUDA when present, else the CPU; a one-line error for a bad request."""

from __future__ import annotations

from dataclasses import dataclass

DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(ValueError):
    """A device the user asked for is not available; ``str()`` is one user-facing line."""


@dataclass
class DeviceInfo:
    name: str  # what pick_device accepts: "cpu", "cuda:0", ...
    label: str  # for people: "CPU (2 cores)", "NVIDIA RTX 4090 (24.0 GB)"
    kind: str  # "cpu" or "cuda"


def pick_device(name: str | None = "auto"):
    """``"auto"`` → first CUDA GPU if any, else CPU; ``"cuda"``/``"cuda:N"`` must exist."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but no CUDA GPU is available (use --device cpu)")
        index = 0
        if ":" in name:
            try:
                index = int(name.split(":", 1)[1])
            except ValueError:
                raise DeviceError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise DeviceError(f"device {name!r} does not exist (this machine has {count} CUDA GPU(s))")
        return torch.device(f"cuda:{index}")
    raise DeviceError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)")


def list_devices() -> list[DeviceInfo]:
    """The CPU, then every CUDA GPU with its name and memory."""
    import os

    import torch

    devices = [DeviceInfo("cpu", f"CPU ({os.cpu_count() or 1} cores)", "cpu")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            devices.append(DeviceInfo(f"cuda:{i}", f"{p.name} ({p.total_memory / 1e9:.1f} GB)", "cuda"))
    return devices
