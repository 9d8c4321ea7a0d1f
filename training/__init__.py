"""Multi-task fine-tuning, evaluation and the baseline; built on speechint_desktop.core."""
