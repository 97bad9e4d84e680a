"""Text descriptors: length, language/script, refusal, structured-output validity, attachments, tool names.

Each descriptor is defined once here and rendered two ways: a Python function (for arrays of texts:
calibration, benchmarks, tests) and a ClickHouse SQL expression (for whole windows in the store). The two
agree by construction on ASCII-lowercased word tokens, code-point ranges and RE2-compatible patterns; an
integration test runs both over the same texts. No network models: language is a stopword vote within the
Latin script, and other scripts are told apart by their Unicode blocks.
"""

from __future__ import annotations

import re
from functools import lru_cache

import orjson

# Only 300 characters of a text are inspected for language and refusal, which bounds the cost per event
# whatever the text's length: the start of an output, the end of an input (a flattened chat ends with the
# user's latest message; its start is usually the system prompt).
LANGUAGE_PREFIX_CHARS = 300
REFUSAL_PREFIX_CHARS = 300
EMPTY = "(empty)"
UNKNOWN_LATIN = "latin-other"
NONE = "(none)"

# Non-Latin scripts by Unicode block, checked in this order; a script is the text's if at least
# max(3, 20% of the inspected characters) belong to it. Japanese kana come before Han so Japanese text
# (which mixes kana and kanji) is not called Chinese.
SCRIPTS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("ja", ((0x3040, 0x309F), (0x30A0, 0x30FF))),
    ("ko", ((0xAC00, 0xD7AF), (0x1100, 0x11FF))),
    ("zh", ((0x4E00, 0x9FFF), (0x3400, 0x4DBF))),
    ("cyrillic", ((0x0400, 0x04FF),)),
    ("greek", ((0x0370, 0x03FF),)),
    ("arabic", ((0x0600, 0x06FF), (0x0750, 0x077F))),
    ("hebrew", ((0x0590, 0x05FF),)),
    ("devanagari", ((0x0900, 0x097F),)),
    ("thai", ((0x0E00, 0x0E7F),)),
)
SCRIPT_MIN_CHARS = 3
SCRIPT_MIN_SHARE = 0.2

# Distinctive ASCII stopwords per Latin-script language. A word counts for the first language listing it.
STOPWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("en", ("the", "and", "is", "are", "you", "your", "to", "of", "it", "that", "for", "with", "this",
            "have", "can", "not", "be", "on", "my", "what", "how", "please", "was", "will", "if", "we")),
    ("es", ("el", "los", "las", "que", "y", "es", "por", "para", "una", "con", "su", "lo", "del", "se",
            "mi", "tu", "puedo", "pero", "como", "hay", "cuenta", "gracias", "te", "al", "esta")),
    ("de", ("der", "die", "das", "und", "ist", "nicht", "ich", "sie", "mit", "zu", "den", "ein", "eine",
            "auf", "dem", "wie", "kann", "bitte", "mein", "ihr", "ihre", "wir", "noch", "oder", "danke")),
    ("fr", ("le", "les", "et", "je", "vous", "pas", "une", "des", "du", "pour", "avec", "dans", "sur",
            "mon", "ce", "est", "merci", "votre", "nous", "mais", "qui", "il", "elle", "sont")),
    ("pt", ("os", "um", "uma", "nao", "voce", "do", "da", "em", "meu", "minha", "obrigado", "sua", "seu",
            "isso", "mas", "quando", "tem", "pelo", "pela", "ao", "das", "dos")),
    ("it", ("il", "che", "di", "non", "sono", "gli", "della", "per", "grazie", "mio", "questo", "ho",
            "come", "anche", "perche", "ma", "nel", "alla", "della", "suo")),
)
LATIN_LANGUAGES: tuple[str, ...] = tuple(lang for lang, _ in STOPWORDS)


def _word_language() -> dict[str, int]:
    out: dict[str, int] = {}
    for i, (_, words) in enumerate(STOPWORDS):
        for w in words:
            out.setdefault(w, i + 1)
    return out


WORD_LANGUAGE: dict[str, int] = _word_language()  # word -> 1-based language index
LATIN_MIN_HITS = 2

# Refusals in the languages above. RE2 and Python `re` read these the same way (no look-arounds).
REFUSAL_PATTERN = (
    r"(?i)("
    r"i(?:'|’)?m sorry,? but i (?:can(?:'|’)?t|cannot|am unable|won(?:'|’)?t)"
    r"|i (?:can(?:'|’)?t|cannot|won(?:'|’)?t) (?:help|assist|comply|provide|do that)"
    r"|i(?:'|’)?m (?:not able|unable) to (?:help|assist|comply)"
    r"|as an ai(?: language model)?, i"
    r"|lo siento, pero no puedo|no puedo ayudar"
    r"|es tut mir leid, aber|dabei kann ich nicht helfen|ich kann (?:dabei |ihnen )?nicht helfen"
    r"|je suis d[ée]sol[ée], mais je ne peux pas|je ne peux pas (?:vous )?aider"
    r"|desculpe, mas n[ãa]o posso|mi dispiace, ma non posso"
    r")"
)
_REFUSAL_RE = re.compile(REFUSAL_PATTERN)
_REFUSAL_LOWER_RE = re.compile(REFUSAL_PATTERN.removeprefix("(?i)"))  # all its literals are lower case

# A message list carrying a tool result or a non-text part (image, file, audio) as clients send them.
ATTACHMENT_PATTERN = (
    r"\"role\"\s*:\s*\"(?:tool|function)\"|\"type\"\s*:\s*\"(?:image|image_url|input_image|file|input_file"
    r"|audio|input_audio|document|tool_result)\""
)
_ATTACHMENT_RE = re.compile(ATTACHMENT_PATTERN)

# Tool names: the `tool`/`tool_name` metadata the SDKs set, else the first function a tool call names.
TOOL_CALL_PATTERN = r"\"tool_calls\".*?\"name\"\s*:\s*\"([^\"]+)\""
_TOOL_CALL_RE = re.compile(TOOL_CALL_PATTERN)

_LATIN_BYTES = bytes(b if 97 <= b <= 122 else 32 for b in range(256))
_WORD_LANGUAGE_BYTES: dict[bytes, int] = {w.encode(): i for w, i in WORD_LANGUAGE.items()}
_BLANK_RE = re.compile(r"\s*", re.ASCII)


def _script_class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in ranges)


_SCRIPT_RES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(f"[{_script_class(r)}]")) for name, r in SCRIPTS
)
_ANY_SCRIPT_RE = re.compile("[" + "".join(_script_class(r) for _, r in SCRIPTS) + "]")


# ------------------------------------------------------------------------------------------- Python


def text_length(text: str) -> int:
    return len(text)


@lru_cache(maxsize=1 << 18)  # windows of one feature repeat texts; the cache makes re-runs cheap
def language(text: str, tail: bool = False) -> str:
    """Script or language label of a text: 'en', 'es', ..., 'zh', 'cyrillic', 'latin-other', '(empty)'."""
    prefix = text[-LANGUAGE_PREFIX_CHARS:] if tail else text[:LANGUAGE_PREFIX_CHARS]
    if _BLANK_RE.fullmatch(prefix):
        return EMPTY
    # Most texts have no character of any listed script: ASCII, or one search, rules all nine scripts out.
    if not prefix.isascii() and (script := _script(prefix)) is not None:
        return script
    # The `[a-z]+` words of the lower-cased text, split without a regex: bytes outside a-z become spaces (UTF-8
    # encodes every non-ASCII character with bytes >= 0x80, so no character is cut and none joins a word).
    words = prefix.lower().encode("utf-8", "surrogatepass").translate(_LATIN_BYTES).split()
    ids = [i for i in map(_WORD_LANGUAGE_BYTES.get, words) if i]
    counts = [ids.count(i) for i in range(1, len(STOPWORDS) + 1)]
    best = max(counts)
    if best < LATIN_MIN_HITS or counts.count(best) > 1:
        return UNKNOWN_LATIN
    return LATIN_LANGUAGES[counts.index(best)]


def _script(prefix: str) -> str | None:
    if _ANY_SCRIPT_RE.search(prefix) is None:
        return None
    need = max(SCRIPT_MIN_CHARS, SCRIPT_MIN_SHARE * len(prefix))
    for name, rx in _SCRIPT_RES:
        if len(rx.findall(prefix)) >= need:
            return name
    return None


@lru_cache(maxsize=1 << 18)
def is_refusal(text: str) -> bool:
    prefix = text[:REFUSAL_PREFIX_CHARS]
    if prefix.isascii():
        # On ASCII text, case-insensitive matching is plain matching of the lower-cased text: same answer,
        # ~6x faster than Python's case-insensitive regex.
        return _REFUSAL_LOWER_RE.search(prefix.lower()) is not None
    return _REFUSAL_RE.search(prefix) is not None


def clear_caches() -> None:
    """Forget every cached descriptor (benchmarks time descriptors from scratch)."""
    language.cache_clear()
    is_refusal.cache_clear()


def is_valid_json(text: str) -> bool:
    if not text:
        return False
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def has_attachment(messages_json: str) -> bool:
    return bool(messages_json) and _ATTACHMENT_RE.search(messages_json) is not None


def tool_name(metadata: dict[str, str], output_messages: str) -> str:
    name = metadata.get("tool") or metadata.get("tool_name") or ""
    if not name and output_messages:
        m = _TOOL_CALL_RE.search(output_messages)
        if m:
            name = m.group(1)
    return name or NONE


# ---------------------------------------------------------------------------------------------- SQL


def _sql_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_re(pattern: str) -> str:
    # RE2 reads \x{HHHH}; Python reads the raw characters: same code points either way.
    return _sql_str(pattern)


def _sql_script_class(ranges: tuple[tuple[int, int], ...]) -> str:
    return "[" + "".join(f"\\x{{{lo:04X}}}-\\x{{{hi:04X}}}" for lo, hi in ranges) + "]"


def sql_language(column: str, tail: bool = False) -> str:
    """ClickHouse expression equal to `language(column)`.

    Repeated sub-expressions are written out: ClickHouse computes identical expressions once per row, and
    multiIf evaluates lazily, so the per-script counts only run on texts that have such characters at all.
    """
    p = f"{'rightUTF8' if tail else 'leftUTF8'}({column}, {LANGUAGE_PREFIX_CHARS})"
    need = f"greatest({SCRIPT_MIN_CHARS}, {SCRIPT_MIN_SHARE} * lengthUTF8({p}))"
    words = list(WORD_LANGUAGE)
    words_sql = "[" + ",".join(_sql_str(w) for w in words) + "]"
    ids_sql = "[" + ",".join(str(WORD_LANGUAGE[w]) for w in words) + "]"
    # alphaTokens = runs of bytes a-z/A-Z: on lower-cased UTF-8 exactly the `[a-z]+` words, without a regex.
    ids = f"arrayMap(w -> transform(w, {words_sql}, {ids_sql}, 0), alphaTokens(lowerUTF8({p})))"
    # Written so each costly part appears once: ClickHouse does not share work between repeated
    # lambda expressions, but a lambda's arguments are computed once.
    counts = f"arrayMap(i -> countEqual({ids}, i), range(1, {len(STOPWORDS) + 1}))"
    langs_sql = "[" + ",".join(_sql_str(x) for x in LATIN_LANGUAGES) + "]"
    latin = (
        f"arrayElement(arrayMap(c -> if(arrayMax(c) < {LATIN_MIN_HITS} OR countEqual(c, arrayMax(c)) > 1, "
        f"{_sql_str(UNKNOWN_LATIN)}, arrayElement({langs_sql}, indexOf(c, arrayMax(c)))), [{counts}]), 1)"
    )
    any_script = _sql_re(_sql_script_class(tuple(r for _, rs in SCRIPTS for r in rs)))
    script_checks = ", ".join(
        f"countMatches({p}, {_sql_re(_sql_script_class(r))}) >= {need}, {_sql_str(name)}" for name, r in SCRIPTS
    )
    return (
        f"multiIf(match({p}, '^\\\\s*$'), {_sql_str(EMPTY)}, NOT match({p}, {any_script}), {latin}, "
        f"{script_checks}, {latin})"
    )


def sql_refusal(column: str) -> str:
    return f"match(leftUTF8({column}, {REFUSAL_PREFIX_CHARS}), {_sql_re(REFUSAL_PATTERN)})"


def sql_valid_json(column: str) -> str:
    return f"({column} != '' AND isValidJSON({column}))"


def sql_attachment(column: str) -> str:
    return f"({column} != '' AND match({column}, {_sql_re(ATTACHMENT_PATTERN)}))"


def sql_tool_name(metadata: str = "metadata", output_messages: str = "output_messages") -> str:
    return (
        f"multiIf({metadata}['tool'] != '', {metadata}['tool'], {metadata}['tool_name'] != '', "
        f"{metadata}['tool_name'], extract({output_messages}, {_sql_re(TOOL_CALL_PATTERN)}) != '', "
        f"extract({output_messages}, {_sql_re(TOOL_CALL_PATTERN)}), {_sql_str(NONE)})"
    )
