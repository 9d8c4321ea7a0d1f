"""core.tokenizer against transformers' WhisperTokenizerFast on the real tokenizers: tiny.en's
and the multilingual base's (the converter's own output from the catalogue's packages)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from speechint_desktop.core.tokenizer import UNICODE_SPLIT, Tokenizer

SENTENCES = [
    "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country.",
    " She had your dark suit in greasy wash water all year.",
    "It's 3.14 o'clock - isn't it? I'd've said \"no\"; they're (mostly) [right] {or} wrong...",
    "  two leading spaces, and a trailing one ",
    "1,234,567.89 dollars, $100, 50%, #tag @user, 10:30 a.m., 1st 2nd 3rd",
    "Ünïcödé: café, naïve façade, Straße, smörgåsbord, ½ ¼ °C €5 — “quotes” ‘single’…",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε; שלום עולם; مرحبا بالعالم",
    "我们今天下午去公园散步，好吗？",
    "日本語のテキストです、はい！東京へ行きます。",
    "สวัสดีครับ ยินดีที่ได้รู้จัก",
    "ສະບາຍດີ",
    "မင်္ဂလာပါ",
    "你哋今日食咗飯未呀？",
    "emoji 🎙️🔊 and tabs\tand\nnewlines",
    "<|en|> special tokens typed as text <|0.00|> <|endoftext|>",
    "",
    " ",
    "a",
    "-quoted- 'single' \"double\" (¿qué? ¡sí!)",
]
LANGUAGES = [None, "english", "german", *UNICODE_SPLIT.values()]


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory) -> Path:
    """The multilingual base's tokenizer files: the installed model's, else what the converter
    writes from the catalogue's base packages (tokenizer only, no weights)."""
    from speechint_desktop.core import catalog, convert_ct2

    if catalog.is_installed("base"):
        return catalog.model_path("base")
    aux: dict[str, bytes] = {}
    for package in catalog.CATALOG["base"].packages:
        files = catalog._installed_files(package)
        if files is None:
            pytest.skip(f"base is neither installed nor its package {package} (catalog.install('base'))")
        aux.update(files.aux)
    side = tmp_path_factory.mktemp("base-ct2")
    (side / "tokenizer.json").write_bytes(aux["tokenizer.json"])
    vocab_size = 51865  # multilingual Whisper before large-v3 (the converter reads it from the weights)
    out = side / "base"
    convert_ct2._processor(
        convert_ct2._build_tokenizer(side / "tokenizer.json", vocab_size), 80
    ).save_pretrained(out)
    return out


@pytest.fixture(scope="module", params=["tiny.en", "base"])
def pair(request):
    """(transformers' tokenizer, ours) for one model folder."""
    from transformers import WhisperTokenizerFast

    folder = request.getfixturevalue("tiny_en_dir" if request.param == "tiny.en" else "base_dir")
    return WhisperTokenizerFast.from_pretrained(folder), Tokenizer.from_folder(folder)


def _sequences(ref, mine) -> list[list[int]]:
    """Token sequences as decoding makes them: plain text, a timestamped window with its start
    tokens and eos, and a window decoded after a text prompt."""
    sot = ref.convert_tokens_to_ids("<|startoftranscript|>")
    tb = ref.convert_tokens_to_ids("<|0.00|>")
    eos = ref.eos_token_id
    start = [sot]
    if ref.convert_tokens_to_ids("<|transcribe|>") is not None and mine.vocab_size > 51864:
        start += [ref.convert_tokens_to_ids("<|zh|>"), ref.convert_tokens_to_ids("<|transcribe|>")]
    out = []
    for k, s in enumerate(SENTENCES):
        ids = ref.encode(s, add_special_tokens=False)
        out.append(ids)
        half = len(ids) // 2
        out.append([*start, tb + k, *ids[:half], tb + 50 + k, tb + 50 + k, *ids[half:], tb + 100, eos])
        out.append(
            [mine.prev, *ref.encode(" earlier words", add_special_tokens=False), *start, tb, *ids, eos]
        )
    return out


def test_special_ids(pair):
    ref, mine = pair
    assert mine.all_special_ids == ref.all_special_ids
    assert mine.eos_token_id == ref.eos_token_id
    assert mine.timestamp_begin == ref.all_special_ids[-1] + 1 == ref.convert_tokens_to_ids("<|0.00|>")
    assert mine.sot == ref.convert_tokens_to_ids("<|startoftranscript|>")
    assert mine.prev == ref.convert_tokens_to_ids("<|startofprev|>")
    assert mine.no_timestamps == ref.convert_tokens_to_ids("<|notimestamps|>")
    assert mine.vocab_size == len(ref)
    assert mine.language is ref.language is None


def test_encode_is_identical(pair):
    ref, mine = pair
    for s in SENTENCES:
        for special in (False, True):
            assert mine.encode(s, add_special_tokens=special) == ref.encode(s, add_special_tokens=special), s
    prompt = "Earlier, they'd said: ‘fine’."
    assert mine.encode(" " + prompt.strip(), add_special_tokens=False) == ref.encode(
        " " + prompt.strip(), add_special_tokens=False
    )


def _same_decoding(ref, mine, ids) -> None:
    for skip in (True, False):
        for stamps in (False, True):
            want = ref.decode(ids, skip_special_tokens=skip, decode_with_timestamps=stamps)
            assert mine.decode(ids, skip_special_tokens=skip, decode_with_timestamps=stamps) == want, ids


def test_decode_and_tokens_of_real_sequences(pair):
    ref, mine = pair
    seqs = _sequences(ref, mine)
    for ids in seqs:
        _same_decoding(ref, mine, ids)
        assert mine.convert_ids_to_tokens(ids) == ref.convert_ids_to_tokens(ids)
        assert mine.convert_ids_to_tokens(ids, skip_special_tokens=True) == ref.convert_ids_to_tokens(
            ids, skip_special_tokens=True
        )
        assert [mine.convert_ids_to_tokens(i) for i in ids] == [ref.convert_ids_to_tokens(i) for i in ids]
    # the texts come back (a round trip, not only agreement)
    for s in SENTENCES:
        assert mine.decode(mine.encode(s, add_special_tokens=True), skip_special_tokens=True) == s.replace(
            "<|0.00|>", ""
        ).replace("<|en|>", "").replace("<|endoftext|>", "")
    assert mine.decode([]) == ref.decode([]) == ""


def test_decode_of_random_ids_with_specials_and_timestamps(pair):
    ref, mine = pair
    rng = random.Random(7)
    specials = ref.all_special_ids
    tb = mine.timestamp_begin
    for _ in range(600):
        ids = []
        for _ in range(rng.randint(0, 40)):
            r = rng.random()
            if r < 0.1:
                ids.append(rng.choice(specials))
            elif r < 0.25:
                ids.append(rng.randrange(tb, mine.vocab_size))
            else:
                ids.append(rng.randrange(mine.eos_token_id))
        if ids and rng.random() < 0.2:
            ids[0] = mine.prev
        _same_decoding(ref, mine, ids)


def test_words_are_split_as_transformers_does(pair):
    from transformers.models.whisper.tokenization_whisper import _combine_tokens_into_words

    ref, mine = pair
    rng = random.Random(3)
    seqs = [ref.encode(s, add_special_tokens=False) for s in SENTENCES]
    seqs += [[rng.randrange(mine.eos_token_id) for _ in range(rng.randint(1, 25))] for _ in range(60)]
    seqs += _sequences(ref, mine)[1::3]  # with timestamps and specials
    for ids in seqs:
        for lang in LANGUAGES:
            want = _combine_tokens_into_words(ref, ids, lang)
            assert mine.words(ids, lang) == want, (ids, lang)
    # a language code is taken for its name
    for code, name in UNICODE_SPLIT.items():
        ids = seqs[8]  # Chinese text: a word per character, punctuation joined
        assert mine.words(ids, code) == _combine_tokens_into_words(ref, ids, name)
    words, tokens, indices = mine.words(ref.encode(SENTENCES[0], add_special_tokens=False), "en")
    assert words[:3] == ["And", " so,", " my"]
    assert [t for w in tokens for t in w] == ref.encode(SENTENCES[0], add_special_tokens=False)
    assert [i for w in indices for i in w] == list(
        range(len(ref.encode(SENTENCES[0], add_special_tokens=False)))
    )


def test_bad_folders_are_one_line_errors(tmp_path, tiny_en_dir):
    with pytest.raises(ValueError, match="no tokenizer.json"):
        Tokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a readable tokenizer"):
        Tokenizer.from_folder(tmp_path)
    # without tokenizer_config.json: the special tokens from tokenizer.json itself
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "tokenizer.json").write_bytes((Path(tiny_en_dir) / "tokenizer.json").read_bytes())
    tok = Tokenizer.from_folder(bare)
    assert tok.timestamp_begin == tok.convert_tokens_to_ids("<|0.00|>")
    assert tok.decode(tok.encode(" hello", add_special_tokens=True), skip_special_tokens=True) == " hello"
    (bare / "tokenizer_config.json").write_text("{truncated")
    with pytest.raises(ValueError, match="tokenizer_config.json: not readable"):
        Tokenizer.from_folder(bare)
