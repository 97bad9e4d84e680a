"""Redaction of texts before they leave for the judge or a review file: emails, phone numbers, API keys."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

EMAIL: Final = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# A run of digits with the usual separators; `_phone` keeps only runs of 9-15 digits, so dates, prices,
# order numbers and versions are left alone.
PHONE_CANDIDATE: Final = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().-]{6,22}\d(?![\w])")
API_KEYS: Final = (
    re.compile(r"\b(?:sk|pk|rk)-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{16,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\b(?:ghp|gho|ghs|ghu|github_pat)_[A-Za-z0-9_]{20,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{20,}=*"),
    re.compile(r"(?i)\b(?:api[_-]?key|secret|access[_-]?token|password)\b(\s*[:=]\s*)[\"']?[^\s\"',;]{8,}"),
)
EMAIL_MASK: Final = "[EMAIL]"
PHONE_MASK: Final = "[PHONE]"
KEY_MASK: Final = "[API_KEY]"
PATTERN_MASK: Final = "[REDACTED]"


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(ch.isdigit() for ch in text)
    return PHONE_MASK if 9 <= digits <= 15 else text


def _key(match: re.Match[str]) -> str:
    # `api_key = XYZ` keeps its name so the judge still sees what was there.
    if match.lastindex:
        head = match.group(0)[: match.end(1) - match.start(0)]
        return head + KEY_MASK
    return KEY_MASK


@dataclass(frozen=True)
class Redactor:
    emails: bool = True
    phones: bool = True
    api_keys: bool = True
    patterns: Sequence[str] = ()
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, default=())

    def __post_init__(self) -> None:
        compiled = []
        for i, pattern in enumerate(self.patterns):
            try:
                compiled.append(re.compile(pattern))
            except re.error as exc:
                raise ValueError(f"redaction pattern #{i + 1} {pattern!r} is not a valid regex: {exc}") from None
        object.__setattr__(self, "_compiled", tuple(compiled))

    @property
    def enabled(self) -> bool:
        return self.emails or self.phones or self.api_keys or bool(self._compiled)

    def __call__(self, text: str) -> str:
        if not text:
            return text
        steps: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = []
        if self.api_keys:
            steps.extend((p, _key) for p in API_KEYS)
        if self.emails:
            steps.append((EMAIL, EMAIL_MASK))
        if self.phones:
            steps.append((PHONE_CANDIDATE, _phone))
        steps.extend((p, PATTERN_MASK) for p in self._compiled)
        for pattern, replacement in steps:
            text = pattern.sub(replacement, text)
        return text


NO_REDACTION: Final = Redactor(emails=False, phones=False, api_keys=False)
