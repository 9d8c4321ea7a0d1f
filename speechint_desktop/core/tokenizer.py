"""Whisper's tokenizer without transformers: a model folder's ``tokenizer.json`` run by the
``tokenizers`` library (Rust, imports in ~30 ms; transformers costs more than half a second of a
CLI start).

``Tokenizer`` offers what the engine uses of transformers' ``WhisperTokenizerFast``, with the
same results: ``decode`` (the prompt before ``<|startoftranscript|>`` and special tokens dropped on
request, timestamp tokens always dropped from the text), ``encode``, token/id lookups, the special
ids, and ``words``: openai-whisper's grouping of tokens into words (transformers'
``_combine_tokens_into_words``), by spaces, or by whole characters for languages written without
them.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

# languages written without spaces between words: split where a token completes a character
UNICODE_SPLIT = {
    "zh": "chinese",
    "ja": "japanese",
    "th": "thai",
    "lo": "lao",
    "my": "myanmar",
    "yue": "cantonese",
}
PREPEND_PUNCTUATIONS = "\"'“¡¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
_TIMESTAMP = re.compile(r"<\|(\d+\.\d+)\|>")
_NAMED_SPECIALS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class Tokenizer:
    """A Whisper tokenizer loaded from a model folder (``from_folder``)."""

    def __init__(self, backend, config: dict | None = None):
        """``backend``: a ``tokenizers.Tokenizer``; ``config``: the folder's tokenizer_config.json."""
        self.backend = backend
        config = config or {}
        self.language: str | None = config.get("language")
        specials = _special_tokens(backend, config)
        self.all_special_ids: list[int] = [backend.token_to_id(t) for t in specials]
        self.eos_token_id: int = self._id(_token(config.get("eos_token")) or "<|endoftext|>")
        self.sot: int = self._id("<|startoftranscript|>")
        self.prev: int | None = backend.token_to_id("<|startofprev|>")
        self.no_timestamps: int | None = backend.token_to_id("<|notimestamps|>")
        # transformers' rule: the timestamps follow the last special token
        self.timestamp_begin: int = self.all_special_ids[-1] + 1
        self.vocab_size: int = backend.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_folder(cls, folder: str | Path) -> Tokenizer:
        """The tokenizer of a model folder (``tokenizer.json``, and ``tokenizer_config.json`` for
        the special tokens when present)."""
        from tokenizers import Tokenizer as Backend

        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise ValueError(f"{folder}: no tokenizer.json (not a Whisper model folder)")
        try:
            backend = Backend.from_file(str(path))
        except Exception as e:  # tokenizers raises its own Exception subclass for a bad file
            raise ValueError(f"{path}: not a readable tokenizer ({e})") from e
        config_path = folder / "tokenizer_config.json"
        try:
            config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
        except (OSError, ValueError) as e:
            raise ValueError(f"{config_path}: not readable ({e})") from e
        if backend.token_to_id("<|startoftranscript|>") is None:
            raise ValueError(f"{path}: not a Whisper tokenizer (no <|startoftranscript|>)")
        return cls(backend, config)

    def _id(self, token: str) -> int:
        i = self.backend.token_to_id(token)
        if i is None:
            raise ValueError(f"tokenizer has no {token} token")
        return i

    # --- lookups ----------------------------------------------------------------------------

    def convert_ids_to_tokens(self, ids: int | Iterable[int], skip_special_tokens: bool = False):
        """A token's string (``None`` for an id out of range), or a list of them."""
        if isinstance(ids, numbers.Integral):
            return self.backend.id_to_token(int(ids))
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self.backend.id_to_token(int(i)) for i in ids if int(i) not in skip]

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]):
        """A token's id (``None`` if unknown), or a list of them."""
        if isinstance(tokens, str):
            return self.backend.token_to_id(tokens)
        return [self.backend.token_to_id(t) for t in tokens]

    # --- text <-> ids -----------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``; with special tokens: ``<|startoftranscript|><|notimestamps|>``
        before and ``<|endoftext|>`` after (the folder's post-processor, as transformers)."""
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(
        self,
        ids: int | Sequence[int],
        skip_special_tokens: bool = False,
        decode_with_timestamps: bool = False,
    ) -> str:
        """The text of ``ids``. ``skip_special_tokens`` also drops a prompt (everything before
        ``<|startoftranscript|>`` in ids that start with ``<|startofprev|>``); timestamp tokens are
        dropped, or written as ``<|1.08|>`` times with ``decode_with_timestamps``."""
        ids = [int(ids)] if isinstance(ids, numbers.Integral) else [int(i) for i in ids]
        if skip_special_tokens:
            ids = self._strip_prompt(ids)
        if decode_with_timestamps:
            return self._decode_with_timestamps(ids, skip_special_tokens)
        return _TIMESTAMP.sub("", self.backend.decode(ids, skip_special_tokens=skip_special_tokens))

    def _strip_prompt(self, ids: list[int]) -> list[int]:
        if not ids or ids[0] != self.prev:
            return ids
        return ids[ids.index(self.sot) :] if self.sot in ids else []

    def _decode_with_timestamps(
        self, ids: list[int], skip_special_tokens: bool, precision: float = 0.02
    ) -> str:
        """transformers' ``_decode_with_timestamps``: times continue across 30 s windows."""
        begin, segment_s = self.timestamp_begin, 1500 * precision
        outputs: list = [[]]
        cur_max = prev_len = penultimate = 0.0
        for i, token in enumerate(ids):
            if token >= begin:
                ts = float((token - begin) * precision)
                if ts < cur_max:  # the next window has started
                    single_ending = i >= 2 and not (ids[i - 1] >= begin and ids[i - 2] >= begin)
                    if single_ending:
                        prev_len += segment_s
                    else:
                        cur_max = penultimate
                        prev_len += penultimate
                        outputs = outputs[:-2]
                penultimate = cur_max
                cur_max = ts
                outputs.append(f"<|{(ts + prev_len):.2f}|>")
                outputs.append([])
            else:
                outputs[-1].append(token)
        text = [
            s if isinstance(s, str) else self.backend.decode(s, skip_special_tokens=skip_special_tokens)
            for s in outputs
        ]
        return "".join(text)

    # --- words ------------------------------------------------------------------------------

    def words(
        self, tokens: Sequence[int], language: str | None = None
    ) -> tuple[list[str], list[list[int]], list[list[int]]]:
        """``(words, their tokens, their token indices)``: transformers' ``_combine_tokens_into_words``
        (openai-whisper's rule). ``language``: a code (``"zh"``) or name (``"chinese"``); Chinese,
        Japanese, Thai, Lao, Burmese and Cantonese split at whole characters, the rest at spaces,
        then punctuation joins its neighbouring word."""
        language = language or self.language or "english"
        tokens = [int(t) for t in tokens]
        if language in UNICODE_SPLIT or language in UNICODE_SPLIT.values():
            words, word_tokens, indices = self._split_on_unicode(tokens)
        else:
            words, word_tokens, indices = self._split_on_spaces(tokens)
        _merge_punctuations(words, word_tokens, indices, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS)
        return words, word_tokens, indices

    def _split_on_unicode(self, tokens: list[int]):
        """Cut wherever the tokens so far decode to whole characters (no U+FFFD that the full
        text does not also have there)."""
        full = self.decode(tokens, decode_with_timestamps=True)
        replacement = "\ufffd"
        words, word_tokens, indices = [], [], []
        current, current_idx = [], []
        offset = 0
        for idx, token in enumerate(tokens):
            current.append(token)
            current_idx.append(idx)
            decoded = self.decode(current, decode_with_timestamps=True)
            at = decoded.find(replacement)
            if at < 0 or offset + at >= len(full) or full[offset + at] == replacement:
                words.append(decoded)
                word_tokens.append(current)
                indices.append(current_idx)
                current, current_idx = [], []
                offset += len(decoded)
        return words, word_tokens, indices

    def _split_on_spaces(self, tokens: list[int]):
        """Whole characters joined into words: a new word at a space, a punctuation mark or a
        special token."""
        words, word_tokens, indices = [], [], []
        for sub, sub_tokens, sub_idx in zip(*self._split_on_unicode(tokens), strict=True):
            special = sub_tokens[0] >= self.eos_token_id
            with_space = sub.startswith(" ")
            punctuation = sub.strip() in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
            if special or with_space or punctuation or not words:
                words.append(sub)
                word_tokens.append(sub_tokens)
                indices.append(sub_idx)
            else:
                words[-1] += sub
                word_tokens[-1].extend(sub_tokens)
                indices[-1].extend(sub_idx)
        return words, word_tokens, indices


def _token(value) -> str | None:
    """A special token from tokenizer_config.json: a string or an AddedToken dict."""
    if isinstance(value, dict):
        return value.get("content")
    return value


def _special_tokens(backend, config: dict) -> list[str]:
    """transformers' ``all_special_tokens`` order: the named ones, then the extra ones; without a
    config, the tokenizer's special added tokens by id."""
    names = [_token(config.get(k)) for k in _NAMED_SPECIALS]
    extra = config.get("extra_special_tokens") or config.get("additional_special_tokens") or []
    if isinstance(extra, dict):  # a name -> token map (multimodal models)
        extra = list(extra.values())
    tokens = [t for t in [*names, *(_token(e) for e in extra)] if t]
    if not extra:
        added = backend.get_added_tokens_decoder()
        tokens += [added[i].content for i in sorted(added) if added[i].special]
    seen: set[str] = set()
    out = [t for t in tokens if not (t in seen or seen.add(t))]
    if not out or any(backend.token_to_id(t) is None for t in out):
        raise ValueError("tokenizer_config.json names special tokens the tokenizer does not have")
    return out


def _merge_punctuations(words, tokens, indices, prepended: str, appended: str) -> None:
    """Opening punctuation joins the next word, closing punctuation the previous one (in place)."""
    i, j = len(words) - 2, len(words) - 1
    while i >= 0:
        if words[i].startswith(" ") and words[i].strip() in prepended:
            words[j] = words[i] + words[j]
            tokens[j] = tokens[i] + tokens[j]
            indices[j] = indices[i] + indices[j]
            words[i], tokens[i], indices[i] = "", [], []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(words):
        if not words[i].endswith(" ") and words[j] in appended:
            words[i] += words[j]
            tokens[i] += tokens[j]
            indices[i] += indices[j]
            words[j], tokens[j], indices[j] = "", [], []
        else:
            i = j
        j += 1
    words[:] = [w for w in words if w]
    tokens[:] = [t for t in tokens if t]
    indices[:] = [x for x in indices if x]
