from pathlib import Path
def resources_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "resources"
