"""The PySide6 app; drives speechint_desktop.core."""
