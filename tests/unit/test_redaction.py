"""collector/redaction.py: each built-in kind is masked as [REDACTED:kind] and counted, near-misses are left alone,
opt-in kinds stay off by default, and LLMPULSE_REDACT / the custom patterns file configure what is masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.redaction import (
    DEFAULT_KINDS,
    OPT_IN_KINDS,
    RedactionConfigError,
    RedactionPolicy,
    Redactor,
    card_number_valid,
    compile_custom,
    iban_valid,
    luhn_valid,
    parse_kinds,
)
from llmpulse.errors import OperatorError
from llmpulse.security import redaction_policy
from llmpulse.settings import Settings

OPENAI = "sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56"
ANTHROPIC = "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB = "ghp_aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5"
SLACK = "xoxb-1234567890-AbCdEfGhIj"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc123"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END RSA PRIVATE KEY-----"
CARD = "4111 1111 1111 1111"  # Visa test number, Luhn-valid


def _redact(text: str, redactor: Redactor | None = None) -> tuple[str, dict[str, int]]:
    counts: dict[str, int] = {}
    return (redactor or Redactor()).redact(text, counts), counts


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        (f"my key is {OPENAI} ok", OPENAI, "openai_key"),
        (f"use {ANTHROPIC} please", ANTHROPIC, "anthropic_key"),
        (f"id {AWS_ID} here", AWS_ID, "aws_access_key"),
        (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_key"),
        (f"token {GITHUB} end", GITHUB, "github_token"),
        (f"{SLACK} done", SLACK, "slack_token"),
        (f"curl -H 'Authorization: Bearer {BEARER}'", BEARER, "bearer_token"),
        (f"key:\n{PEM}\nafter", "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo", "private_key"),
        (f"card {CARD} exp 12/29", CARD, "card"),
        ("card 4111-1111-1111-1111", "4111-1111-1111-1111", "card"),
        ("amex 378282246310005", "378282246310005", "card"),
    ],
)
def test_default_kinds_are_masked_and_counted(text: str, secret: str, kind: str) -> None:
    masked, counts = _redact(text)
    assert f"[REDACTED:{kind}]" in masked
    assert secret not in masked
    assert counts == {kind: 1}


def test_aws_key_pair_is_masked_together() -> None:
    masked, counts = _redact(f"{AWS_ID} / {AWS_SECRET}")
    assert masked == "[REDACTED:aws_access_key] / [REDACTED:aws_secret_key]"
    assert counts == {"aws_access_key": 1, "aws_secret_key": 1}


def test_an_unterminated_private_key_is_masked_to_the_end() -> None:
    masked, counts = _redact("cut: -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
    assert masked == "cut: [REDACTED:private_key]" and counts == {"private_key": 1}


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112 exp",  # Luhn fails
        "order 1234567890123456",  # no card network's prefix
        "timestamp 1795000000000000000 ns",
        "use sk-learn-estimator-for-classification please",  # words, not a generated key
        "a 40-character path: abcdefghijabcdefghijabcdefghijabcdefghij",  # no AWS id or label beside it
        "Bearer of bad news",
        "How do I reset my password?",
    ],
)
def test_near_misses_are_left_alone(text: str) -> None:
    assert _redact(text) == (text, {})


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert card_number_valid("5555 5555 5555 4444") and not card_number_valid("5555 5555 5555 4445")
    assert not card_number_valid("4111 1111-1111 1111")  # mixed separators
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")


OPT_IN_SAMPLES = {
    "email": ("mail jane.doe@example.com today", "jane.doe@example.com"),
    "phone": ("call +1 415-555-0132 now", "415-555-0132"),
    "iban": ("pay to DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
}


@pytest.mark.parametrize("kind", sorted(OPT_IN_SAMPLES))
def test_opt_in_kinds_are_off_by_default_and_on_when_asked(kind: str) -> None:
    text, value = OPT_IN_SAMPLES[kind]
    assert kind in OPT_IN_KINDS and kind not in DEFAULT_KINDS
    assert _redact(text) == (text, {})
    masked, counts = _redact(text, Redactor(RedactionPolicy(kinds=parse_kinds([kind]))))
    assert value not in masked and f"[REDACTED:{kind}]" in masked and counts == {kind: 1}


def test_an_invalid_iban_is_not_masked() -> None:
    redactor = Redactor(RedactionPolicy(kinds=parse_kinds(["iban"])))
    text = "pay to DE89 3704 0044 0532 0130 01 please"
    assert _redact(text, redactor) == (text, {})


def test_parse_kinds_starts_from_the_defaults() -> None:
    assert parse_kinds([]) == DEFAULT_KINDS
    assert parse_kinds(["email"]) == DEFAULT_KINDS | {"email"}  # adding never drops secret masking
    assert parse_kinds(["-card"]) == DEFAULT_KINDS - {"card"}
    assert parse_kinds(["none"]) == frozenset()
    assert parse_kinds(["none", "openai_key"]) == {"openai_key"}
    assert parse_kinds(["all"]) == DEFAULT_KINDS | OPT_IN_KINDS
    with pytest.raises(RedactionConfigError, match=r"unknown redaction kind 'emails'.*known kinds"):
        parse_kinds(["emails"])


def test_nothing_is_masked_with_none() -> None:
    redactor = Redactor(RedactionPolicy(kinds=parse_kinds(["none"])))
    assert not redactor.enabled
    assert _redact(f"{OPENAI} {CARD}", redactor) == (f"{OPENAI} {CARD}", {})


def test_custom_patterns_mask_with_their_name() -> None:
    policy = RedactionPolicy(custom=compile_custom({"ticket": r"TCK-\d{6}"}, where="patterns.yml"))
    masked, counts = _redact(f"see TCK-123456 and TCK-654321, key {OPENAI}", Redactor(policy))
    assert masked == "see [REDACTED:ticket] and [REDACTED:ticket], key [REDACTED:openai_key]"
    assert counts == {"ticket": 2, "openai_key": 1}


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ({"Ticket": "x"}, "pattern name 'Ticket' must be lower-case"),
        ({"card": r"\d+"}, "'card' is a built-in kind"),
        ({"ticket": "("}, "'ticket' is not a valid regex"),
        ({"ticket": "x*"}, "'ticket' matches the empty string"),
        ({"ticket": ""}, "'ticket' must be a non-empty regex"),
    ],
)
def test_custom_pattern_errors_name_the_file_and_the_pattern(patterns: dict[str, str], message: str) -> None:
    with pytest.raises(RedactionConfigError, match=message) as raised:
        compile_custom(patterns, where="patterns.yml")
    assert str(raised.value).startswith("patterns.yml: ")


def test_redact_value_masks_strings_inside_json() -> None:
    counts: dict[str, int] = {}
    value = [{"role": "user", "content": [{"type": "text", "text": f"key {OPENAI}"}], "n": 3}]
    masked = Redactor().redact_value(value, counts)
    assert masked == [{"role": "user", "content": [{"type": "text", "text": "key [REDACTED:openai_key]"}], "n": 3}]
    assert counts == {"openai_key": 1}


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_settings_become_a_policy(tmp_path: Path) -> None:
    assert redaction_policy(_settings()) == RedactionPolicy()
    file = tmp_path / "patterns.yml"
    file.write_text("patterns:\n  ticket: 'TCK-\\d{6}'\n", "utf-8")
    policy = redaction_policy(_settings(redact=["email", "-card"], redact_patterns_file=file))
    assert policy.kinds == (DEFAULT_KINDS | {"email"}) - {"card"}
    assert policy.custom == (("ticket", r"TCK-\d{6}"),)
    file.write_text("ticket: 'TCK-\\d{6}'\n", "utf-8")  # a plain mapping works too
    assert redaction_policy(_settings(redact_patterns_file=file)).custom == (("ticket", r"TCK-\d{6}"),)


def test_settings_errors_are_one_operator_line(tmp_path: Path) -> None:
    with pytest.raises(OperatorError, match="unknown redaction kind 'bogus'"):
        redaction_policy(_settings(redact=["bogus"]))
    with pytest.raises(OperatorError, match="cannot read LLMPULSE_REDACT_PATTERNS_FILE"):
        redaction_policy(_settings(redact_patterns_file=tmp_path / "missing.yml"))
    bad = tmp_path / "bad.yml"
    bad.write_text("ticket: '('\n", "utf-8")
    invalid = r"LLMPULSE_REDACT_PATTERNS_FILE .*bad.yml: pattern 'ticket' is not a valid"
    with pytest.raises(OperatorError, match=invalid):
        redaction_policy(_settings(redact_patterns_file=bad))
    bad.write_text("- a\n- b\n", "utf-8")
    with pytest.raises(OperatorError, match="must be a YAML mapping"):
        redaction_policy(_settings(redact_patterns_file=bad))
