"""Masking of secrets and personal data in texts before they are stored (and before the judge sees them).

Pure: patterns, checks (Luhn, mod-97) and one `Redactor` that replaces each match with `[REDACTED:<kind>]`
and counts what it replaced. docs/security.md lists the kinds and how to configure them.

Speed: ingest masks every text of every event, so a text that cannot contain a kind costs a few substring
tests. Each kind has a cheap pre-check (a literal such as `sk-` or `AKIA`, an `@`, a run of digits); only
the kinds whose pre-check passes join the one combined regex run over the text (compiled once per set of
kinds, then cached). Checks that a regex cannot express (Luhn for cards, mod-97 for IBANs, "looks random"
for tokens) run in Python on the candidates only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

OPENAI_KEY: Final = "openai_key"
ANTHROPIC_KEY: Final = "anthropic_key"
AWS_ACCESS_KEY: Final = "aws_access_key"
AWS_SECRET_KEY: Final = "aws_secret_key"
GITHUB_TOKEN: Final = "github_token"
SLACK_TOKEN: Final = "slack_token"
BEARER_TOKEN: Final = "bearer_token"
PRIVATE_KEY: Final = "private_key"
CARD: Final = "card"
EMAIL: Final = "email"
PHONE: Final = "phone"
IBAN: Final = "iban"

SECRET_KINDS: Final = (
    PRIVATE_KEY, ANTHROPIC_KEY, OPENAI_KEY, AWS_ACCESS_KEY, AWS_SECRET_KEY, GITHUB_TOKEN, SLACK_TOKEN, BEARER_TOKEN,
)
# Masked unless turned off: nobody means to store credentials or card numbers.
DEFAULT_KINDS: Final = frozenset((*SECRET_KINDS, CARD))
# Masked only when asked for: many apps need emails and phone numbers in their traces.
OPT_IN_KINDS: Final = frozenset((EMAIL, PHONE, IBAN))
BUILTIN_KINDS: Final = DEFAULT_KINDS | OPT_IN_KINDS
# Longest first in the combined regex: at one position the first alternative that matches wins.
_ORDER: Final = (*SECRET_KINDS, IBAN, CARD, EMAIL, PHONE)


def mask(kind: str) -> str:
    return f"[REDACTED:{kind}]"


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits (card numbers)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN without spaces (letters upper-case)."""
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def _card_brand_ok(digits: str) -> bool:
    """Issuer prefixes and lengths of the card networks: order numbers and timestamps rarely fit both."""
    n = len(digits)
    first = digits[0]
    two = int(digits[:2])
    four = int(digits[:4])
    if first == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if 2200 <= four <= 2204:  # Mir
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:  # Diners Club
        return 14 <= n <= 19
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if first == "6" or two == 50 or 56 <= two <= 58:  # Discover, UnionPay, Maestro, RuPay
        return 13 <= n <= 19
    return False


_CARD_GROUPINGS: Final = ((4, 6, 5), (4, 6, 4))


def card_number_valid(candidate: str) -> bool:
    """13-19 digits, one kind of separator (space or dash) grouped like a printed card, a network's prefix
    and length, and a valid Luhn checksum."""
    separators = {char for char in candidate if not char.isdigit()}
    if len(separators) > 1:
        return False
    if separators:
        groups = tuple(len(group) for group in candidate.split(separators.pop()))
        regular = all(size == 4 for size in groups[:-1]) and 1 <= groups[-1] <= 4
        if not regular and groups not in _CARD_GROUPINGS:
            return False
        digits = candidate.replace(" ", "").replace("-", "")
    else:
        digits = candidate
    return 13 <= len(digits) <= 19 and _card_brand_ok(digits) and luhn_valid(digits)


def _looks_random(token: str) -> bool:
    """A generated token mixes letters and digits; words and kebab-case names ("sk-learn-estimator") do not."""
    has_digit = has_upper = has_lower = False
    for char in token:
        if char.isdigit():
            has_digit = True
        elif char.isupper():
            has_upper = True
        elif char.islower():
            has_lower = True
    return has_digit and (has_upper or has_lower)


def _aws_secret_ok(token: str) -> bool:
    has_digit = any(c.isdigit() for c in token)
    return has_digit and any(c.isupper() for c in token) and any(c.islower() for c in token)


def _phone_ok(candidate: str) -> bool:
    digits = sum(char.isdigit() for char in candidate)
    if not 9 <= digits <= 15:
        return False
    # A phone number is written with a +, parentheses or separators; a bare run of digits is an id.
    return any(char in "+( .-" for char in candidate) and not _DATE_LIKE.match(candidate)


def _iban_ok(candidate: str) -> bool:
    return iban_valid(candidate.replace(" ", ""))


_DATE_LIKE: Final = re.compile(r"\d{4}[-.]\d{2}[-.]\d{2}")
_TOKEN_BOUNDARY: Final = r"(?<![A-Za-z0-9_-])"


@dataclass(frozen=True, slots=True)
class _Builtin:
    regex: str
    # Literals one of which a text must contain for the kind to be possible (None: any digit).
    hints: tuple[str, ...] | None
    check: Callable[[str], bool] | None = None


_BUILTINS: Final[dict[str, _Builtin]] = {
    PRIVATE_KEY: _Builtin(
        # Also an unterminated block (a text cut at max_text_bytes still hides the rest of the key).
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
        ("-----BEGIN",),
    ),
    ANTHROPIC_KEY: _Builtin(_TOKEN_BOUNDARY + r"sk-ant-[A-Za-z0-9_-]{20,}", ("sk-ant-",), _looks_random),
    OPENAI_KEY: _Builtin(
        _TOKEN_BOUNDARY + r"sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}", ("sk-",), _looks_random
    ),
    AWS_ACCESS_KEY: _Builtin(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])", ("AKIA", "ASIA")),
    AWS_SECRET_KEY: _Builtin(
        # Labelled (aws_secret_access_key = ...), or any 40-character key-like token in a text that also
        # holds an access key id (see Redactor._aws_secret_hint).
        r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
        ("AKIA", "ASIA", "ecret", "ECRET"),
        _aws_secret_ok,
    ),
    GITHUB_TOKEN: _Builtin(
        _TOKEN_BOUNDARY + r"(?:(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        ("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_"),
    ),
    SLACK_TOKEN: _Builtin(_TOKEN_BOUNDARY + r"xox[abprs]-[A-Za-z0-9-]{10,}", ("xox",)),
    BEARER_TOKEN: _Builtin(
        r"(?<![A-Za-z0-9])[Bb](?i:earer)\s+[A-Za-z0-9._~+/-]{16,}=*", ("earer", "EARER"), None
    ),
    IBAN: _Builtin(
        r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?|[A-Z0-9]{11,30})(?![A-Za-z0-9])",
        None,
        _iban_ok,
    ),
    CARD: _Builtin(
        # The digit first, then the look-behinds about the character before it: a pattern that starts with a
        # character class lets the regex engine skip straight to digits.
        r"[0-9](?<![0-9][0-9])(?<![0-9][ -][0-9])(?:[ -]?[0-9]){12,18}(?![0-9])(?![ -][0-9])",
        None,
        card_number_valid,
    ),
    EMAIL: _Builtin(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b", ("@",)),
    PHONE: _Builtin(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,5}(?![\w])", None, _phone_ok
    ),
}
_BEARER_VALUE: Final = re.compile(r"\s+(\S+)")


def _bearer_ok(match_text: str) -> bool:
    value = _BEARER_VALUE.search(match_text)
    return value is not None and _looks_random(value.group(1))


_BUILTINS[BEARER_TOKEN] = _Builtin(_BUILTINS[BEARER_TOKEN].regex, _BUILTINS[BEARER_TOKEN].hints, _bearer_ok)
_AWS_SECRET_LABELLED: Final = re.compile(
    r"(?i:aws_?secret_?access_?key|secret_?access_?key|aws_?secret_?key)[\"']?\s*[:=]\s*[\"']?$"
)
# Every digit kind (card, IBAN, phone) holds at least this: 9+ digits, single separators allowed between them.
_DIGIT_RUN: Final = re.compile(r"[0-9](?:[ .()-]{0,2}[0-9]){8}")


class RedactionConfigError(ValueError):
    """A kind that does not exist or a custom pattern that is not a valid regex; the message says which."""


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """What to mask: built-in kinds, plus custom `(name, regex)` patterns. Picklable, for worker processes."""

    kinds: frozenset[str] = DEFAULT_KINDS
    custom: tuple[tuple[str, str], ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.kinds or self.custom)


DEFAULT_POLICY: Final = RedactionPolicy()
NO_REDACTION_POLICY: Final = RedactionPolicy(kinds=frozenset())


def parse_kinds(entries: Iterable[str]) -> frozenset[str]:
    """`LLMPULSE_REDACT` entries -> kinds, applied in order to the default set: a kind name adds it, `-kind`
    removes it, `none` removes everything, `all` adds every built-in kind, `default` adds the default set.
    Starting from the defaults means adding `email` never turns secret masking off by accident."""
    kinds: set[str] = set(DEFAULT_KINDS)
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        remove = entry.startswith("-")
        name = entry.lstrip("-+")
        if name == "default":
            group: frozenset[str] = DEFAULT_KINDS
        elif name == "none":
            group, remove = BUILTIN_KINDS, True
        elif name == "all":
            group = BUILTIN_KINDS
        elif name in BUILTIN_KINDS:
            group = frozenset((name,))
        else:
            raise RedactionConfigError(
                f"unknown redaction kind {raw.strip()!r} in LLMPULSE_REDACT; known kinds: "
                f"{', '.join(sorted(BUILTIN_KINDS))} (and default, all, none; -KIND turns one off)"
            )
        if remove:
            kinds -= group
        else:
            kinds |= group
    return frozenset(kinds)


_CUSTOM_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def compile_custom(patterns: Mapping[str, str], *, where: str) -> tuple[tuple[str, str], ...]:
    """Check custom patterns (name -> regex) from `where` (a file name); raises RedactionConfigError naming
    the file and the pattern."""
    checked = []
    for name, regex in patterns.items():
        if not isinstance(name, str) or not _CUSTOM_NAME.match(name):
            raise RedactionConfigError(
                f"{where}: pattern name {name!r} must be lower-case letters, digits and _ (it becomes "
                "[REDACTED:name] and a metrics label)"
            )
        if name in BUILTIN_KINDS:
            raise RedactionConfigError(f"{where}: pattern name {name!r} is a built-in kind; choose another name")
        if not isinstance(regex, str) or not regex:
            raise RedactionConfigError(f"{where}: pattern {name!r} must be a non-empty regex string")
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise RedactionConfigError(f"{where}: pattern {name!r} is not a valid regex: {exc}") from None
        if compiled.match(""):
            raise RedactionConfigError(f"{where}: pattern {name!r} matches the empty string")
        checked.append((name, regex))
    return tuple(checked)


Counts = dict[str, int]


@dataclass(slots=True)
class Redactor:
    """Masks the kinds of `policy` in texts; `redact` adds what it replaced to a per-kind count."""

    policy: RedactionPolicy = DEFAULT_POLICY
    _hinted: tuple[tuple[str, tuple[str, ...]], ...] = field(init=False, repr=False)
    _digit_kinds: tuple[str, ...] = field(init=False, repr=False)
    _custom: tuple[tuple[str, re.Pattern[str]], ...] = field(init=False, repr=False)
    _combined: dict[frozenset[str], tuple[re.Pattern[str], tuple[str, ...]]] = field(init=False, repr=False)
    _precheck: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = self.policy.kinds - BUILTIN_KINDS
        if unknown:
            raise RedactionConfigError(f"unknown redaction kinds {sorted(unknown)}")
        kinds = [k for k in _ORDER if k in self.policy.kinds]
        self._hinted = tuple((k, hints) for k in kinds if (hints := _BUILTINS[k].hints) is not None)
        self._digit_kinds = tuple(k for k in kinds if _BUILTINS[k].hints is None)
        self._custom = tuple((name, re.compile(regex)) for name, regex in self.policy.custom)
        self._combined = {}
        alternatives = [re.escape(hint) for _, hints in self._hinted for hint in hints]
        if self._digit_kinds:
            alternatives.append(_DIGIT_RUN.pattern)
        self._precheck = re.compile("|".join(alternatives)) if alternatives else None

    @property
    def enabled(self) -> bool:
        return self.policy.enabled

    def _candidates(self, text: str) -> frozenset[str]:
        # One scan answers the common case (no kind possible); a text that might hold one is checked per kind.
        if self._precheck is None or self._precheck.search(text) is None:
            return frozenset()
        kinds = [kind for kind, hints in self._hinted if any(hint in text for hint in hints)]
        if self._digit_kinds and _DIGIT_RUN.search(text):
            kinds.extend(self._digit_kinds)
        return frozenset(kinds)

    def _pattern(self, kinds: frozenset[str]) -> tuple[re.Pattern[str], tuple[str, ...]]:
        cached = self._combined.get(kinds)
        if cached is None:
            ordered = tuple(k for k in _ORDER if k in kinds)
            regex = "|".join(f"(?P<{k}>{_BUILTINS[k].regex})" for k in ordered)
            cached = (re.compile(regex), ordered)
            self._combined[kinds] = cached
        return cached

    def redact(self, text: str, counts: Counts | None = None) -> str:
        """`text` with every match masked; `counts[kind]` grows by the matches replaced."""
        if not text:
            return text
        kinds = self._candidates(text)
        if kinds:
            text = self._redact_builtin(text, kinds, counts)
        for name, pattern in self._custom:
            text, replaced = pattern.subn(mask(name), text)
            if replaced and counts is not None:
                counts[name] = counts.get(name, 0) + replaced
        return text

    def _redact_builtin(self, text: str, kinds: frozenset[str], counts: Counts | None) -> str:
        pattern, _ = self._pattern(kinds)
        # A 40-character token is only an AWS secret beside an access key id or a label naming it.
        aws_context = AWS_SECRET_KEY in kinds and ("AKIA" in text or "ASIA" in text)

        def replace(match: re.Match[str]) -> str:
            kind = match.lastgroup
            assert kind is not None
            found = match.group(0)
            check = _BUILTINS[kind].check
            if check is not None and not check(found):
                return found
            if kind == AWS_SECRET_KEY and not (
                aws_context or _AWS_SECRET_LABELLED.search(text, max(0, match.start() - 40), match.start())
            ):
                return found
            if counts is not None:
                counts[kind] = counts.get(kind, 0) + 1
            return mask(kind)

        return pattern.sub(replace, text)

    def redact_value(self, value: Any, counts: Counts | None = None) -> Any:
        """Every string inside decoded JSON (messages, tool calls) masked; structure and other values kept."""
        if isinstance(value, str):
            return self.redact(value, counts)
        if isinstance(value, list):
            return [self.redact_value(item, counts) for item in value]
        if isinstance(value, dict):
            return {key: self.redact_value(item, counts) for key, item in value.items()}
        return value

    def redact_strings(self, values: Sequence[str], counts: Counts | None = None) -> list[str]:
        return [self.redact(value, counts) for value in values]


def merge_counts(into: Counts, other: Mapping[str, int]) -> None:
    for kind, count in other.items():
        into[kind] = into.get(kind, 0) + count
