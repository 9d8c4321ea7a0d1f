"""PyInstaller's entry script for the SpeechInt bundle (the logic lives in the package)."""

from speechint_desktop.launcher import entry

if __name__ == "__main__":
    entry()
