"""Qt-free core: audio, loudness, models, inference. Imports neither Qt nor training."""
