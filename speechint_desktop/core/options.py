"""How a recording is transcribed: speech detection and decoding settings, one dataclass each.

Like openai-whisper's ``DecodingOptions``: the CLI, the app's settings and the Python API all
build one of these, and the engine reads nothing else. Defaults are the measured ones (README,
"Long recordings"); every field is a user-facing option.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class VadOptions:
    """Silero VAD settings (``silero_vad.get_speech_timestamps``'s, in the same units).

    ``threshold``: speech probability above which a 32 ms frame is speech.
    ``min_speech_ms``: shorter bursts are dropped. ``min_silence_ms``: a pause must last this
    long to end a region. ``speech_pad_ms``: kept on each side of a region so no word onset or
    tail is clipped. ``max_window_s``: regions are packed into decoding windows of at most this
    length (Whisper's 30 s input); a longer region is split at its longest pause.
    """

    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 500
    speech_pad_ms: int = 200
    max_window_s: float = 30.0


@dataclass(frozen=True)
class TranscribeOptions:
    """Decoding settings, openai-whisper's robust long-form rules.

    ``temperatures``: a window is decoded greedily first and again at the next temperature while
    its compression ratio exceeds ``compression_ratio_threshold`` (repetition) or its average
    log-probability is below ``logprob_threshold``. A window whose no-speech probability exceeds
    ``no_speech_threshold`` *and* whose log-probability is below ``logprob_threshold`` gives no
    text. ``condition_on_previous_text`` prompts each window with the previous one's text
    (more consistent style, but a bad window can spoil the next). ``vad=False`` decodes the
    whole recording in consecutive 30 s windows instead of detected speech only.
    ``pack_clips``: in a batch, short recordings share windows (fewer encoder passes, and more
    context: 13.6 % → 12.1 % WER on 72 short clips in 35 → 22 s); a window that skipped a stretch
    or mixed recordings up has every recording in it decoded again alone (``placement.redo``).
    The price: a short file's words can depend on its neighbours in the batch (``--ray`` turns
    it off for that reason). ``beam_size``: the beams of the first, temperature-0 pass (the
    sampled fallback draws one sequence, as openai-whisper's); 5, openai-whisper's and
    faster-whisper's own default, made 2.7-2.9 fewer words in 100 wrong than greedy decoding on
    both benchmark sets, for about 20 % more time on long recordings; 1 is greedy.
    ``fit_windows``: a window with less than 28 s of speech (a short clip decoded alone, a
    recording's last window) is encoded as 10 or 20 s, not padded to 30 s: faster, and fewer
    words wrong on short clips (CTranslate2 only: ``ct2.window_seconds``; transformers always
    reads 30 s).
    """

    vad: bool = True
    vad_options: VadOptions = field(default_factory=VadOptions)
    temperatures: tuple[float, ...] = FALLBACK_TEMPERATURES
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    condition_on_previous_text: bool = False
    word_timestamps: bool = True
    language: str | None = None
    pack_clips: bool = True
    beam_size: int = 5
    fit_windows: bool = True

    def __post_init__(self) -> None:
        # a whole number of beams, at least one (greedy): every decoder reads it as it is
        object.__setattr__(self, "beam_size", max(1, int(self.beam_size)))

    def with_(self, **changes) -> TranscribeOptions:
        """A copy with some fields changed (``vad_*`` keys change ``vad_options``)."""
        vad_changes = {
            k[4:]: changes.pop(k) for k in list(changes) if k.startswith("vad_") and k != "vad_options"
        }
        opts = replace(self, **changes)
        if vad_changes:
            opts = replace(opts, vad_options=replace(opts.vad_options, **vad_changes))
        return opts
