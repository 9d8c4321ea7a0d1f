"""User preferences kept in QSettings, behind typed properties so keys live in one place."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings

DEFAULT_MODEL = "tiny.en"  # mirrors core.catalog.DEFAULT_MODEL without importing core at startup


class Settings:
    """Model, device, export folder, intensity display unit, local checkpoints and window state.

    Tests pass an ini ``path`` so they never touch the user's real settings.
    """

    def __init__(self, path: str | None = None):
        if path:
            self._s = QSettings(str(path), QSettings.Format.IniFormat)
        else:
            self._s = QSettings("SpeechInt", "SpeechInt")

    def _get(self, key: str, default):
        value = self._s.value(key, default)
        return default if value is None else value

    @property
    def model(self) -> str:
        return str(self._get("model", DEFAULT_MODEL))

    @model.setter
    def model(self, value: str) -> None:
        self._s.setValue("model", value)

    @property
    def device(self) -> str:
        return str(self._get("device", "auto"))

    @device.setter
    def device(self, value: str) -> None:
        self._s.setValue("device", value)

    @property
    def export_dir(self) -> str:
        return str(self._get("export_dir", ""))

    @export_dir.setter
    def export_dir(self, value: str) -> None:
        self._s.setValue("export_dir", value)

    @property
    def intensity_unit(self) -> str:
        """How the loudness plot's headline reads: "dBFS" (RMS) or "LUFS"."""
        value = str(self._get("intensity_unit", "dBFS"))
        return value if value in ("dBFS", "LUFS") else "dBFS"

    @intensity_unit.setter
    def intensity_unit(self, value: str) -> None:
        self._s.setValue("intensity_unit", value)

    @property
    def input_device(self) -> str:
        return str(self._get("input_device", ""))

    @input_device.setter
    def input_device(self, value: str) -> None:
        self._s.setValue("input_device", value)

    @property
    def session(self) -> str:
        return str(self._get("session", ""))

    @session.setter
    def session(self, value: str) -> None:
        self._s.setValue("session", value)

    @property
    def local_models(self) -> list[str]:
        value = self._get("local_models", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in value]

    def add_local_model(self, path: str) -> None:
        models = self.local_models
        if path not in models:
            self._s.setValue("local_models", [*models, path])

    def geometry(self) -> QByteArray | None:
        value = self._s.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self._s.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def save_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self._s.setValue("window/geometry", geometry)
        self._s.setValue("window/state", state)

    def sync(self) -> None:
        self._s.sync()
