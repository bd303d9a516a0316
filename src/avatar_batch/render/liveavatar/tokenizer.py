"""The umT5 tokenizer folder (`<ckpt>/google/umt5-xxl/`) and prompt cleaning (docs/model.md §4).

Knows how to clean a prompt the way the official pipeline does, how to load
the tokenizer folder offline, and how to write a small stand-in folder for
tiny test checkpoints. It knows nothing about the encoder's weights.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avatar_batch.core.errors import Problem, WeightsError
from avatar_batch.core.fsio import atomic_path, remove_tree
from avatar_batch.render.liveavatar.checkpoint.layout import TOKENIZER_FOLDER

TOKENIZER_SUBDIR = Path(TOKENIZER_FOLDER)
TOKENIZER_FILE = "tokenizer.json"
SENTENCEPIECE_FILE = "spiece.model"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_FILE = "special_tokens_map.json"

# T5 numbering: <pad> is 0, </s> (EOS, appended to every prompt) is 1, <unk> is 2.
PAD_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "</s>", "<unk>"
WORD_START = "\u2581"  # SentencePiece's "▁": marks the start of a word

# The stand-in vocabulary: printable ASCII, CJK punctuation, kana and frequent
# hanzi, one piece per character, so any text of those scripts tokenizes
# without <unk> and a prompt's length in tokens is predictable in tests.
_ASCII = "".join(chr(code) for code in range(33, 127))
_CJK_PUNCTUATION = "，。！？、：；（）「」《》…"
_HIRAGANA = "".join(chr(code) for code in range(0x3041, 0x3094))
_KATAKANA = "".join(chr(code) for code in range(0x30A1, 0x30F7)) + "ー"
_HANZI = (
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她"
    "里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从"
    "动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等"
    "几很业最间新什打便位因重被走电四第门相次东"
)
_TINY_PIECES = _ASCII + _CJK_PUNCTUATION + _HIRAGANA + _KATAKANA + _HANZI
MIN_TINY_VOCAB = 4 + len(_ASCII)  # specials, "▁" and ASCII must always fit
_FOLDER_FIX = "copy google/umt5-xxl/ from the Wan2.2-S2V-14B download, or write tiny weights"


def clean_text(text: str) -> str:
    """Prompt cleaning of the official tokenizer wrapper: fix mojibake (ftfy,
    when installed), HTML-unescape twice, collapse whitespace to single spaces."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # ftfy only repairs broken encodings; clean text passes unchanged
        pass
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def tiny_vocab(vocab_limit: int) -> list[tuple[str, float]]:
    """Unigram pieces with log-probability scores; at most `vocab_limit` of them."""
    if vocab_limit < MIN_TINY_VOCAB:
        raise ValueError(f"a tiny umT5 vocabulary needs at least {MIN_TINY_VOCAB} entries, got {vocab_limit}")
    pieces: list[tuple[str, float]] = [(PAD_TOKEN, 0.0), (EOS_TOKEN, 0.0), (UNK_TOKEN, 0.0), (WORD_START, -2.0)]
    pieces += [(char, -5.0) for char in _TINY_PIECES]
    return pieces[:vocab_limit]


def _backend_tokenizer(vocab: list[tuple[str, float]]):
    """A `tokenizers` Unigram model laid out like the T5 tokenizer transformers
    rebuilds from a vocabulary, so both loading paths tokenize identically."""
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram

    backend = Tokenizer(Unigram(vocab, unk_id=2, byte_fallback=False))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always", split=True),
        ]
    )
    backend.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always", split=True)
    backend.post_processor = processors.TemplateProcessing(
        single=["$A", EOS_TOKEN], pair=["$A", EOS_TOKEN, "$B", EOS_TOKEN], special_tokens=[(EOS_TOKEN, 1)]
    )
    backend.add_special_tokens([AddedToken(token, special=True) for token in (PAD_TOKEN, EOS_TOKEN, UNK_TOKEN)])
    return backend


def _tokenizer_config(text_len: int) -> dict[str, Any]:
    # extra_ids 0: the default 100 sentinel tokens would get ids past the tiny vocabulary.
    return {
        "tokenizer_class": "T5Tokenizer",
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "unk_token": UNK_TOKEN,
        "extra_ids": 0,
        "additional_special_tokens": [],
        "model_max_length": text_len,
        "clean_up_tokenization_spaces": False,
    }


def write_tiny_tokenizer(folder: Path, vocab_limit: int, text_len: int = 512) -> None:
    """Write a loadable T5-style tokenizer folder (tokenizer.json and configs)."""
    folder = Path(folder)
    special = {"eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN, "unk_token": UNK_TOKEN}
    if folder.exists():
        remove_tree(folder)
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        _backend_tokenizer(tiny_vocab(vocab_limit)).save(str(tmp / TOKENIZER_FILE))
        (tmp / TOKENIZER_CONFIG_FILE).write_text(json.dumps(_tokenizer_config(text_len), indent=2), encoding="utf-8")
        (tmp / SPECIAL_TOKENS_FILE).write_text(json.dumps(special, indent=2), encoding="utf-8")


def load_tokenizer(folder: Path):
    """The tokenizer of `folder`, from local files only (never the Hub)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsError(
            f"tokenizer folder {folder} is missing",
            [Problem(file=str(folder), message="folder not found", fix=_FOLDER_FIX)],
        )
    problems = []
    if not (folder / TOKENIZER_CONFIG_FILE).is_file():
        problems.append(Problem(file=str(folder / TOKENIZER_CONFIG_FILE), message="file not found", fix=_FOLDER_FIX))
    if not ((folder / TOKENIZER_FILE).is_file() or (folder / SENTENCEPIECE_FILE).is_file()):
        problems.append(
            Problem(
                file=str(folder / TOKENIZER_FILE),
                message=f"neither {TOKENIZER_FILE} nor {SENTENCEPIECE_FILE} found",
                fix=_FOLDER_FIX,
            )
        )
    if problems:
        raise WeightsError(f"tokenizer folder {folder} is incomplete", problems)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)


def tokenize(tokenizer, texts: Sequence[str], text_len: int):
    """Cleaned texts -> (ids, mask), both (B, text_len) int64, EOS appended,
    padded with <pad> and truncated to `text_len` like the official wrapper."""
    batch = tokenizer(
        [clean_text(text) for text in texts],
        padding="max_length",
        truncation=True,
        max_length=text_len,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    return batch["input_ids"], batch["attention_mask"]
