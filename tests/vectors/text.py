"""Generate the text vectors: a small tokenizer, its ids, and the training windows of text files.

    python tests/vectors/text.py           rewrite the files below from what the code produces
    python tests/vectors/text.py --check   exit 1 if a committed file differs

- tests/vectors/text_tokenizer.json: a byte-level BPE tokenizer trained by
  `disco.text.train_tokenizer` on `CORPUS` (written here, so the file is reproducible: training
  is deterministic), the tokenizer every case below uses.
- tests/vectors/tokenizer.json: texts with their ids (ASCII, accents, emoji, CJK, whitespace,
  control bytes, the end-of-text token's text, a long text, seeded random strings), ids with the
  text they decode to (bytes that are not UTF-8 among them), and what is refused: text with a
  lone surrogate, ids outside the vocabulary, tokenizer.json files of another shape.
- tests/vectors/text_windows.json: the reading rule on file bytes, the window rule on token ids,
  and both together on named files (documents, training and validation windows, or the error).

Read by tests/text/test_tokenizer_vectors.py, tests/data/test_text_vectors.py,
web/tests/tokenizer.test.ts and web/tests/text.test.ts.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # sibling modules, as a script or loaded by path
from jsontext import dump

from disco.data.text import decode_text, load_text, make_windows
from disco.errors import DataError, TaskError
from disco.text.tokenizer import Tokenizer, train_tokenizer

HERE = Path(__file__).parent
TOKENIZER = HERE / "text_tokenizer.json"
IDS = HERE / "tokenizer.json"
WINDOWS = HERE / "text_windows.json"
VOCAB_SIZE = 400

CORPUS = [
    "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
    "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;"
    "\nSometime too hot the eye of heaven shines,\nAnd often is his gold complexion dimm'd;\n",
    "The participants train one model together; their files never leave their devices.\n"
    "Only the updates travel: to the server, or directly between the peers.\n\n"
    "    indented  line\twith\ttabs   and    runs of spaces\n\n\n",
    "Le café est très chaud ; l'élève a oublié son cahier à l'école.\n"
    "Übermäßig große Äpfel — naïve façade, coöperate, señor, ĳ, ø, Ørsted.\n",
    "日本語のテキストを少し書きます。中文的句子也在这里。한국어 문장입니다.\n",
    "emoji: 😀 😀 👍🏽 👨‍👩‍👧 🇨🇭 ❤️ and again 😀👍🏽\n",
    "def train(rounds: int) -> float:\n    return 1.5 * rounds  # 2024-05-17, 3.14159\n",
]

ENCODE = [
    ("ASCII", "Hello world. Shall I compare thee to a summer's day?"),
    ("contractions", "don't I'll we've they're it's 'quoted' O'Neill"),
    ("accents, composed", "café élève naïve Ørsted Übermäßig"),
    ("accents, decomposed (no normalisation)", "cafe\u0301 e\u0300le\u0300ve"),
    ("emoji, with skin tone, family and flag", "😀 👍🏽 👨‍👩‍👧 🇨🇭 ❤️"),
    ("CJK and Hangul", "日本語のテキスト 中文的句子 한국어"),
    ("runs of spaces and tabs", "a  b   c    d\t\te \t f"),
    ("runs of newlines", "one\n\n\ntwo\n \n  three\n"),
    ("whitespace only", "  \n\t  "),
    ("leading and trailing space", " leading and trailing "),
    ("carriage returns are bytes like any other", "a\r\nb\rc"),
    ("unusual spaces", "no\u00a0break, em\u2003space, ideographic\u3000space, line\u2028sep"),
    ("control bytes", "\x00\x01\x07\x1b[0m\x7f\u0080\u009f"),
    ("characters never seen in training", "Ѫ ᚠ 𝔸 𓀀 \U0010fffd"),
    ("a byte-order mark inside text", "\ufeffbom"),
    ("the end-of-text token's text", "<|endoftext|>"),
    ("the end-of-text token's text inside text", "end.<|endoftext|>Start"),
    ("almost the end-of-text token", "<|endoftext| <|endoftext"),
    ("digits and numbers", "1234567890 3.14159 -42 1e-9 2024-05-17"),
    ("one character", "a"),
    ("one newline", "\n"),
    ("empty", ""),
]
DECODE_BYTES = [
    ("a lead byte alone", [0xC3]),
    ("a continuation byte alone", [0x80]),
    ("a truncated three-byte sequence, then ASCII", [0xE2, 0x82, 0x61]),
    ("a truncated emoji, then ASCII", [0xF0, 0x9F, 0x98, 0x21]),
    ("an overlong encoding", [0xC0, 0x80]),
    ("an encoded surrogate", [0xED, 0xA0, 0x80]),
    ("a byte never in UTF-8", [0xFF, 0x61, 0xF5]),
    ("valid bytes one by one", [0xC3, 0xA9]),
]
Change = tuple[tuple[str, ...], Any]  # (path in the JSON, new value; None removes the key)
REFUSED_TOKENIZERS: list[tuple[str, list[Change]]] = [
    ("a normalizer", [(("normalizer",), {"type": "NFC"})]),
    ("a WordPiece model", [(("model", "type"), "WordPiece")]),
    ("byte fallback", [(("model", "byte_fallback"), True)]),
    ("BPE dropout", [(("model", "dropout"), 0.1)]),
    ("a prefix space", [(("pre_tokenizer", "add_prefix_space"), True)]),
    ("another pre-tokenizer", [(("pre_tokenizer",), {"type": "Whitespace"})]),
    ("a post-processor", [(("post_processor",), {"type": "ByteLevel", "trim_offsets": True})]),
    ("truncation", [(("truncation",), {"max_length": 8, "strategy": "LongestFirst", "stride": 0})]),
    ("another decoder", [(("decoder",), {"type": "WordPiece", "prefix": "##", "cleanup": True})]),
    ("no end-of-text token", [(("added_tokens",), [])]),
    ("ids with a gap", [(("model", "vocab", "\u0100"), 100000)]),
    ("too small a vocabulary", []),  # all merges removed: filled in by `_too_small`
    ("a byte without its token", []),  # filled in by `_byte_renamed`
]
REFUSED_TEXT = [
    ("a lone high surrogate", [0x61, 0xD800, 0x62]),
    ("a lone low surrogate", [0xDC00]),
]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-level alphabet: the character that stands for each byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _random_texts(n: int) -> list[str]:
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        " \t\n\r\x0b\x0c\u00a0\u1680\u2000\u2009\u2028\u2029\u202f\u205f\u3000\u0085\u200b",
        ".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=|~`",
        "éèêëàâäôöûüçñßøåæœÉÈÀÇ",
        "αβγδΩжщЯ",
        "日本語中文한국어テスト",
        "😀👍🏽👨\u200d👩\u200d👧🇨🇭❤\ufe0f",
        "\u0301\u0308\u200d\ufe0f",
        "\x00\x01\x1f\x7f\u0080\u009f\ufffd\ufeff",
        "'s't're've'm'll'd'S'T",
        "٠١٢३४५",
        "\U0001d400\U00010000",
    ]
    rng = random.Random(12)
    texts = []
    for _ in range(n):
        pool_order = [rng.choice(pools) for _ in range(rng.randint(1, 40))]
        texts.append("".join(rng.choice(p) for p in pool_order))
    return texts


def _long_text() -> str:
    rng = random.Random(7)
    words = " ".join(CORPUS).split(" ")
    return " ".join(rng.choice(words) for _ in range(1500))


def _set(doc: Any, path: tuple[str, ...], value: Any) -> None:
    """Set ``path`` of `doc` to `value`; None removes the key."""
    for key in path[:-1]:
        doc = doc[key]
    if value is None:
        doc.pop(path[-1], None)
    else:
        doc[path[-1]] = value


def _special_changes(name: str, doc: dict[str, Any]) -> list[Change]:
    """The changes of the refusals that depend on the tokenizer's own vocabulary."""
    vocab = doc["model"]["vocab"]
    if name == "too small a vocabulary":
        kept = {t: i for t, i in vocab.items() if i < 256}
        return [(("model", "vocab"), kept), (("model", "merges"), [])]
    if name == "a byte without its token":
        return [
            (("model", "vocab", "\u0100"), None),
            (("model", "vocab", "not a byte"), vocab["\u0100"]),
        ]
    return []


def _refusal(make: Any) -> str:
    try:
        make()
    except (DataError, TaskError) as exc:
        return str(exc)
    raise AssertionError("expected a refusal")


def tokenizer_vectors(tok: Tokenizer) -> dict[str, Any]:
    """Everything tests/vectors/tokenizer.json holds."""
    byte_ids = {b: tok._tokenizer.token_to_id(c) for b, c in _bytes_to_unicode().items()}
    encode = [{"name": n, "text": t, "ids": tok.encode(t)} for n, t in ENCODE]
    encode.append({"name": "a long text", "text": _long_text(), "ids": tok.encode(_long_text())})
    for case in encode:
        assert tok.decode(case["ids"]) == case["text"], case["name"]
    decode = [
        {"name": n, "ids": [byte_ids[b] for b in bs], "text": tok.decode([byte_ids[b] for b in bs])}
        for n, bs in DECODE_BYTES
    ]
    decode.append({"name": "the end-of-text token", "ids": [tok.eot_id], "text": "<|endoftext|>"})
    refused_ids = [[tok.vocab_size], [-1], [0, 5, tok.vocab_size + 7]]
    base = json.loads(tok.to_bytes())
    refused_tokenizers = []
    for name, listed in REFUSED_TOKENIZERS:
        doc = json.loads(tok.to_bytes())
        changes = listed or _special_changes(name, doc)
        for path, value in changes:
            _set(doc, path, value)
        message = _refusal(lambda d=doc: Tokenizer(json.dumps(d, ensure_ascii=False)))
        refused_tokenizers.append(
            {
                "name": name,
                "changes": [{"path": list(p), "value": v} for p, v in changes],
                "error": message,
            }
        )
    assert base == json.loads(tok.to_bytes())
    randoms = _random_texts(200)
    return {
        "about": (
            "Generated by tests/vectors/text.py: ids of text_tokenizer.json (byte-level BPE, "
            "trained by disco.text.train_tokenizer) that Python's tokenizers and the browser's "
            "@huggingface/tokenizers must both give; decode(encode(text)) == text for every "
            "encode case. Refused: texts given as UTF-16 code units, tokenizer.json changes as "
            "dotted paths (null removes the key)."
        ),
        "tokenizer": TOKENIZER.name,
        "digest": tok.digest,
        "vocab_size": tok.vocab_size,
        "eot_id": tok.eot_id,
        "encode": encode,
        "random": [{"text": t, "ids": tok.encode(t)} for t in randoms],
        "decode": decode,
        "refused_text": [
            {"name": n, "code_units": units, "error": "lone surrogate"} for n, units in REFUSED_TEXT
        ],
        "refused_ids": [
            {"ids": ids, "error": _refusal(lambda i=ids: tok.decode(i))} for ids in refused_ids
        ],
        "refused_tokenizers": refused_tokenizers,
    }


# -- text files and windows ----------------------------------------------------------------------

READING = [
    ("plain text", b"one\ntwo\n"),
    ("a byte-order mark is dropped", b"\xef\xbb\xbfone"),
    ("only the first byte-order mark", b"\xef\xbb\xbf\xef\xbb\xbfone"),
    ("CRLF and lone CR become LF", b"a\r\nb\rc\r\r\nd\n\re"),
    ("UTF-8 beyond ASCII", "café 😀 日本".encode()),
    ("whitespace only is text", b" \n\t"),
    ("empty", b""),
    ("only a byte-order mark", b"\xef\xbb\xbf"),
    ("a NUL byte", b"abc\x00def"),
    ("UTF-16 with its byte-order mark", "hi".encode("utf-16")),
    ("a PNG header", bytes.fromhex("89504e470d0a1a0a0000000d49484452")),
    ("Latin-1, not UTF-8", "café".encode("latin-1")),
    ("a sequence cut short at the end", "ab😀".encode()[:-1]),
    ("an encoded surrogate", b"ab\xed\xa0\x80"),
    ("an overlong encoding", b"ok \xc0\xaf"),
    ("beyond U+10FFFF", b"x\xf4\x90\x80\x80"),
    ("bad bytes after a byte-order mark", b"\xef\xbb\xbfab\xff"),
]

WINDOW_RULE = [
    ("non-overlapping windows", [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], 3, None, 0.0),
    ("overlapping windows", [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], 3, 1, 0.0),
    ("stride of two", [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], 4, 2, 0.0),
    ("a validation tail", [list(range(1, 21))], 3, None, 0.25),
    ("each document's tail", [list(range(1, 11)), list(range(11, 31))], 2, None, 0.2),
    ("a document too short for a tail", [[1, 2, 3], list(range(4, 24))], 3, None, 0.3),
    ("windows span documents", [[1, 2], [3], [4, 5, 6], [7]], 4, None, 0.0),
    ("validation windows never overlap", [list(range(1, 31))], 3, 1, 0.5),
    ("the context of one token", [[1, 2, 3, 4]], 1, None, 0.0),
    ("too few tokens", [[1, 2, 3]], 8, None, 0.0),
    ("a stride longer than the context", [[1, 2, 3]], 2, 3, 0.0),
    ("a stride of zero", [[1, 2, 3]], 2, 0, 0.0),
    ("a context of zero", [[1, 2, 3]], 0, None, 0.0),
    ("a validation share of one", [[1, 2, 3]], 1, None, 1.0),
]
EOT_FOR_RULE = 0

FILES: list[tuple[str, list[tuple[str, bytes]], dict[str, Any]]] = [
    ("one document", [("sonnet.txt", CORPUS[0].encode())], {"context": 8}),
    (
        "documents in name order, windows across them",
        [("b.txt", CORPUS[1].encode()), ("a.txt", CORPUS[2].encode()), ("B.txt", b"Upper.")],
        {"context": 6},
    ),
    ("overlapping training windows", [("t.txt", CORPUS[0].encode())], {"context": 5, "stride": 2}),
    ("no validation", [("t.txt", CORPUS[3].encode())], {"context": 4, "validation_split": 0.0}),
    (
        "CRLF, CR and a byte-order mark read as LF text",
        [("w.txt", b"\xef\xbb\xbfline one\r\nline two\rline three\r\n\r\nend")],
        {"context": 3},
    ),
    (
        "the end-of-text token's text in a file",
        [("e.txt", b"first part.<|endoftext|>second part, a little longer.")],
        {"context": 4},
    ),
    (
        "a short document beside long ones",
        [("long.txt", CORPUS[4].encode()), ("short.txt", b"Hi"), ("zz.txt", CORPUS[5].encode())],
        {"context": 8, "validation_split": 0.3},
    ),
    (
        "names in code-point order",
        [("é.txt", b"accent"), ("z.txt", b"zed"), ("😀.txt", b"emoji"), ("ｚ.txt", b"wide")],
        {"context": 2},
    ),
    ("not UTF-8", [("a.txt", b"fine"), ("b.txt", b"caf\xe9 au lait")], {"context": 2}),
    ("a NUL byte", [("data.txt", b"ab\x00cd")], {"context": 2}),
    ("an empty file", [("a.txt", b"text"), ("empty.txt", b"")], {"context": 2}),
    ("a file over the limit", [("big.txt", b"x" * 11)], {"context": 2, "max_file_bytes": 10}),
    (
        "files over the limit in all",
        [("a.txt", b"x" * 15), ("b.txt", b"y" * 15)],
        {"context": 2, "max_total_bytes": 20},
    ),
    ("too little text", [("a.txt", b"Hi there")], {"context": 64}),
    ("no files", [], {"context": 4}),
]


def _case_error(make: Any) -> tuple[Any, str | None]:
    try:
        return make(), None
    except DataError as exc:
        return None, str(exc)


def windows_vectors(tok: Tokenizer) -> dict[str, Any]:
    """Everything tests/vectors/text_windows.json holds."""
    reading = []
    for name, data in READING:
        text, error = _case_error(lambda d=data: decode_text(d, "f.txt"))
        reading.append(
            {"name": name, "hex": data.hex()} | ({"error": error} if error else {"text": text})
        )
    rule = []
    for name, docs, context, stride, split in WINDOW_RULE:
        settings = {"context": context, "stride": stride, "validation_split": split}
        made, error = _case_error(
            lambda d=docs, c=context, s=stride, v=split: make_windows(
                d, EOT_FOR_RULE, c, stride=s, validation_split=v
            )
        )
        result = (
            {"error": error}
            if error
            else {"train": made.train.tolist(), "validation": made.validation.tolist()}
        )
        rule.append({"name": name, "documents": docs, **settings} | result)
    files = []
    for name, contents, settings in FILES:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for file_name, data in contents:
                (Path(tmp) / file_name).write_bytes(data)
                paths.append(Path(tmp) / file_name)
            made, error = _case_error(lambda p=paths, s=settings: load_text(p, tok, **s))
        result = (
            {"error": error}
            if error
            else {
                "documents": list(made.documents),
                "train": made.train.tolist(),
                "validation": made.validation.tolist(),
            }
        )
        listed = [{"name": n, "hex": d.hex()} for n, d in contents]
        files.append({"name": name, "files": listed, "settings": settings} | result)
    return {
        "about": (
            "Generated by tests/vectors/text.py from disco.data.text: `reading` is the rule for "
            "one file's bytes (named f.txt), `rule` the windows of token ids (end-of-text id "
            f"{EOT_FOR_RULE}; stride null: the context), `files` both on named files with the "
            "tokenizer text_tokenizer.json (settings left out take their defaults)."
        ),
        "tokenizer": TOKENIZER.name,
        "eot_id": EOT_FOR_RULE,
        "reading": reading,
        "rule": rule,
        "files": files,
    }


def render() -> dict[Path, str]:
    """Each file's exact text."""
    tok = train_tokenizer(CORPUS, VOCAB_SIZE)
    return {
        TOKENIZER: tok.to_bytes().decode("utf-8"),
        IDS: dump(tokenizer_vectors(tok)) + "\n",
        WINDOWS: dump(windows_vectors(tok)) + "\n",
    }


def main(argv: list[str] | None = None) -> int:
    """Rewrite the files, or with --check compare them with what the code produces."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current == text:
            print(f"{path.name} is up to date")
        elif args.check:
            stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.name}")
    for name in stale:
        print(
            f"tests/vectors/{name} is out of date: run python tests/vectors/text.py",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
