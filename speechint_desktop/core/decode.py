"""Whisper decoding through transformers' own long-form ``generate``, with what SpeechInt adds.

transformers implements openai-whisper's robust decoding (temperature fallback on compression
ratio and log-probability, the no-speech skip, conditioning on previous text, seeking inside a
window) and the DTW used for word alignment; this module calls it
and adds only three small things around it, on the model instance:

- ``EncoderCache``: the encoder runs once per distinct 30 s input. Fallback re-runs and the
  no-speech check call the encoder again on the same features; those calls get the cached
  states, and the same states feed the intensity head (captured with the seek offset they
  belong to), so decoder and head share one encoder pass.
- ``_compact``: each decoded row keeps, instead of its full per-step vocabulary scores, KV cache
  and attentions (tens of MB per window), just per-token log-probabilities, temperature,
  average log-probability and no-speech probability.
- ``decoded_segments``: the library's segment dicts become plain ``RawSegment``s;
  ``align_words`` then times their words (openai-whisper's alignment, transformers' DTW).
"""

from __future__ import annotations

import hashlib

import torch

from .head import head_inputs
from .raw import Capture, RawSegment, RawWord, is_hallucination, place_words  # noqa: F401  (decoding's results, torch-free)

HEAVY_KEYS = ("scores", "cache", "encoder_attentions", "decoder_attentions", "cross_attentions", "logits")


def _key(features: torch.Tensor) -> str:
    return hashlib.blake2b(features.detach().contiguous().cpu().numpy().tobytes(), digest_size=16).hexdigest()


class EncoderCache:
    """Wraps the encoder's ``forward``: one pass per distinct input row, states kept for the head.

    ``seek``/``active`` are set from generate's progress callback before every decoding step,
    so a fresh encoder pass can be attributed to its batch row and seek offset.
    """

    def __init__(self, model, want_head: bool):
        self.model = model
        self.encoder = model.model.encoder
        self.want_head = want_head
        self._orig = self.encoder.forward
        self.states: dict[str, torch.Tensor] = {}
        self.captures: list[Capture] = []
        self._seen: set[tuple[int, int]] = set()
        self.seek: list[int] | None = None
        self.active: list[int] | None = None

    def __enter__(self) -> EncoderCache:
        self.encoder.forward = self._forward
        return self

    def __exit__(self, *exc) -> None:
        del self.encoder.forward  # back to the class's method
        self.states.clear()

    def _forward(self, input_features=None, *args, **kwargs):
        from transformers.modeling_outputs import BaseModelOutput

        keys = [_key(row) for row in input_features]
        missing = [i for i, k in enumerate(keys) if k not in self.states]
        if missing:
            hidden = self._encode(input_features[missing])
            for j, i in enumerate(missing):
                self.states[keys[i]] = hidden[j]
        rows = self._rows(len(input_features))
        for i, k in enumerate(keys if rows is not None else []):
            # first sight of this row at this seek (also when language detection encoded it)
            tag = (rows[i], int(self.seek[rows[i]]) // 2)
            if tag not in self._seen:
                self._seen.add(tag)
                h = self.states[k]
                # the head reads float32 (band powers underflow in half precision)
                x = input_features[i : i + 1].float()
                frames = head_inputs(h[None].float(), x)[0] if self.want_head else None
                self.captures.append(Capture(tag[0], tag[1], h, frames))
        return BaseModelOutput(last_hidden_state=torch.stack([self.states[k] for k in keys]))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder with fused (SDPA) attention: word timings need eager attention in the
        decoder only, and eager self-attention over 1500 frames costs the encoder ~3x."""
        config = self.encoder.config
        impl = config._attn_implementation
        try:
            config._attn_implementation = "sdpa"
            return self._orig(x, output_attentions=False, output_hidden_states=False).last_hidden_state
        finally:
            config._attn_implementation = impl

    def _rows(self, n: int) -> list[int] | None:
        """Batch rows of an encoder call: the still-active rows, in order (None if unknown)."""
        if self.active is None or len(self.active) != n:
            return None
        return self.active


def install_compaction(model) -> None:
    """Make ``generate`` keep compact per-row results (see module docstring). Idempotent."""
    if getattr(model, "_speechint_compact", False):
        return
    need_fallback = model._need_fallback
    retrieve_segment = model._retrieve_segment
    info: dict[int, dict] = {}

    def _need_fallback(
        seek_sequence, seek_outputs, index, logits_processor, generation_config, vocab_size, temperature
    ):
        result = need_fallback(
            seek_sequence, seek_outputs, index, logits_processor, generation_config, vocab_size, temperature
        )
        row = seek_outputs[index]
        no_speech = None
        for proc in logits_processor or []:
            if hasattr(proc, "no_speech_prob") and proc.no_speech_prob is not None:
                try:
                    no_speech = float(proc.no_speech_prob[index])
                except (IndexError, TypeError):
                    no_speech = None
        info[id(row)] = {"temperature": float(temperature or 0.0), "no_speech_prob": no_speech}
        return result

    def _retrieve_segment(*args, **kwargs):
        segments, offset = retrieve_segment(*args, **kwargs)
        for seg in segments:
            seg["result"] = _compact(seg["result"], info)
        return segments, offset

    model._need_fallback = _need_fallback
    model._retrieve_segment = _retrieve_segment
    model._speechint_compact = True


def _compact(result, info: dict[int, dict]) -> dict:
    """Token log-probabilities (aligned with ``sequences``) instead of full vocabulary scores."""
    if not isinstance(result, dict) or "compact" in result:
        return result
    meta = info.pop(id(result), {})
    seq = result["sequences"]
    scores = result.get("scores")
    logprobs = torch.full((len(seq),), float("nan"))
    temperature = meta.get("temperature", 0.0)
    if scores:
        s = torch.stack(list(scores)).float() * (temperature if temperature > 0 else 1.0)
        first = len(seq) - s.shape[0]
        lp = torch.log_softmax(s, dim=-1).gather(-1, seq[first:].long().unsqueeze(-1)).squeeze(-1)
        logprobs[first:] = lp.cpu()
    for k in HEAVY_KEYS:
        result.pop(k, None)
    result["token_logprobs"] = logprobs
    result["temperature"] = temperature
    result["no_speech_prob"] = meta.get("no_speech_prob")
    result["compact"] = True
    return result


def decoded_segments(output: dict, eos: int) -> list[RawSegment]:
    """``generate(..., return_segments=True)`` output → ``RawSegment``s per row (words come
    from ``align_words``)."""
    segments: list[RawSegment] = []
    for row, segs in enumerate(output.get("segments") or []):
        for seg in segs:
            tokens = [int(t) for t in seg["tokens"].tolist()]
            text = [t for t in tokens if t < eos]
            if not text:
                continue
            result = seg.get("result") or {}
            lp_all = result.get("token_logprobs")
            a, b = seg.get("idxs", (0, len(tokens)))
            logprobs = lp_all[a:b].tolist() if lp_all is not None and len(lp_all) >= b else []
            finite = [lp for t, lp in zip(tokens, logprobs, strict=False) if t < eos and lp == lp]
            segments.append(
                RawSegment(
                    start=float(seg["start"]),
                    end=float(seg["end"]),
                    tokens=text,
                    avg_logprob=float(sum(finite) / len(finite)) if finite else None,
                    no_speech_prob=result.get("no_speech_prob"),
                    temperature=result.get("temperature"),
                    row=row,
                )
            )
    return segments


def align_words(
    model,
    hidden: torch.Tensor,
    n_frames: int,
    segments: list[RawSegment],
    sot: list[int],
    eos: int,
    no_ts: int,
    tokenizer,
    language: str,
    offset_s: float = 0.0,
) -> None:
    """Word timings and probabilities for the segments decoded from one encoder window, in place.

    openai-whisper's method: one teacher-forced decoder pass over the window's text (no
    timestamps), the cross-attention of the model's alignment heads normalised per head and
    median-filtered, then transformers' own dynamic time warping from tokens to 20 ms frames.
    Aligning the plain text, rather than reading the attention of the timestamped generation,
    halves the start error on tiny.en (measured on espeak words with known pauses).
    ``offset_s``: where the window starts in the segments' time.
    """
    import numpy as np
    from transformers.models.whisper.generation_whisper import _dynamic_time_warping, _median_filter
    from transformers.models.whisper.tokenization_whisper import _combine_tokens_into_words

    cfg = model.config
    heads = [
        (int(layer), int(head))
        for layer, head in getattr(model.generation_config, "alignment_heads", None) or []
        if layer < cfg.decoder_layers and head < cfg.decoder_attention_heads
    ]  # a checkpoint can carry another size's heads: only those that exist here
    text = [t for seg in segments for t in seg.tokens]
    if not heads or not text or n_frames <= 0:
        return
    prefix = [*sot, no_ts]
    if len(prefix) + len(text) + 1 > cfg.max_target_positions:
        # a window decoded up to the token limit (a loop, kept when the fallback is off) has no
        # room for the teacher-forced pass: its segments keep their text, without word timings
        return
    ids = torch.tensor([[*prefix, *text, eos]], device=hidden.device)
    dec = model.model.decoder(
        input_ids=ids, encoder_hidden_states=hidden[None], output_attentions=True, use_cache=False
    )
    logits = model.proj_out(dec.last_hidden_state)[0]
    probs = logits[len(prefix) - 1 : -1].float().softmax(-1)
    token_probs = probs[torch.arange(len(text)), torch.tensor(text)].tolist()
    frames = min(n_frames, hidden.shape[0])
    weights = torch.stack([dec.cross_attentions[layer][0, head, :, :frames] for layer, head in heads]).float()
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = _median_filter((weights - mean) / std.clamp_min(1e-8), 7)
    matrix = weights.mean(dim=0)[len(prefix) - 1 : -1]  # rows predicting each text token, then eot
    text_idx, time_idx = _dynamic_time_warping(-matrix.double().cpu().numpy())
    jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
    jump_s = time_idx[jumps] / 50.0 + offset_s  # start of each token row; the last one is eot's

    def split(tokens):
        words, _, indices = _combine_tokens_into_words(tokenizer, tokens, language)
        return words, indices

    place_words(segments, jump_s, token_probs, split)
