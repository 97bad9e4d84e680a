"""The shipped Alertmanager config and runbooks cover every alert llmpulse can emit (checked with amtool)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from analyzers.findings import AlertName, Severity
from dashboards.links import panel_for
from tests.support.alertmanager import REPO, SHIPPED_CONFIG, derive_test_config, load_shipped_config

pytestmark = pytest.mark.integration

RUNBOOKS = REPO / "docs" / "runbooks"
RUNBOOK_SECTIONS = ("## What it means", "## How it is computed", "## Likely causes", "## First steps",
                    "## When to escalate")
EXPECTED_RECEIVER = {Severity.CRITICAL: "llm-oncall-page", Severity.WARNING: "llm-tickets", Severity.INFO: "llm-info"}


def amtool(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30, check=False)


def test_amtool_check_config_passes_on_the_shipped_config(amtool_binary: str) -> None:
    result = amtool(amtool_binary, "check-config", str(SHIPPED_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 templates" in result.stdout


def test_derived_test_config_passes_amtool_and_keeps_the_shipped_routing(amtool_binary: str, tmp_path: Path) -> None:
    shipped = load_shipped_config()
    derived = derive_test_config(shipped, "http://127.0.0.1:1")
    path = tmp_path / "derived.yml"
    path.write_text(yaml.safe_dump(derived), "utf-8")
    result = amtool(amtool_binary, "check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert derived["inhibit_rules"] == shipped["inhibit_rules"]

    def shape(route: dict) -> list:
        return [route.get("receiver"), route.get("matchers"), route.get("group_by"), route.get("continue"),
                [shape(child) for child in route.get("routes", [])]]

    assert shape(derived["route"]) == shape(shipped["route"])
    assert {r["name"] for r in derived["receivers"]} == {r["name"] for r in shipped["receivers"]}


@pytest.mark.parametrize("alertname", list(AlertName), ids=str)
def test_every_alertname_has_a_runbook_with_the_on_call_sections(alertname: AlertName) -> None:
    path = RUNBOOKS / f"{alertname.value}.md"
    assert path.is_file(), f"missing runbook {path}"
    text = path.read_text("utf-8")
    assert text.startswith(f"# {alertname.value}"), f"{path}: first line must name the alert"
    missing = [section for section in RUNBOOK_SECTIONS if section not in text]
    assert not missing, f"{path}: missing sections {missing}"
    uid = panel_for(alertname.value).uid
    assert f"`{uid}`" in text, f"{path}: must name the dashboard its alert links to ({uid})"


def test_no_runbook_for_an_alert_that_does_not_exist() -> None:
    names = {path.stem for path in RUNBOOKS.glob("*.md")}
    assert names == {a.value for a in AlertName}


def test_every_alertname_and_severity_routes_to_its_receiver(amtool_binary: str) -> None:
    wrong = []
    for alertname in AlertName:
        for severity in Severity:
            result = amtool(amtool_binary, "config", "routes", "test", f"--config.file={SHIPPED_CONFIG}",
                            f"alertname={alertname.value}", f"severity={severity.value}", "service=llmpulse",
                            "app=support-bot", "environment=production")
            receivers = result.stdout.split()
            if result.returncode != 0 or receivers != [EXPECTED_RECEIVER[severity]]:
                wrong.append(f"{alertname}/{severity}: {result.stdout.strip() or result.stderr.strip()}")
    assert not wrong, "routes not as documented: " + "; ".join(wrong)


def test_unknown_alertname_falls_back_to_the_default_receiver(amtool_binary: str) -> None:
    result = amtool(amtool_binary, "config", "routes", "test", f"--config.file={SHIPPED_CONFIG}",
                    "alertname=LLMSomethingNew", "severity=critical", "service=llmpulse")
    assert result.stdout.split() == ["default-webhook"]


def test_routes_and_inhibit_rules_name_only_real_alerts() -> None:
    config = load_shipped_config()
    matchers: list[str] = []

    def walk(route: dict) -> None:
        matchers.extend(route.get("matchers", []))
        for child in route.get("routes", []):
            walk(child)

    walk(config["route"])
    for rule in config["inhibit_rules"]:
        matchers += rule.get("source_matchers", []) + rule.get("target_matchers", [])
    mentioned = {name for m in matchers for name in re.findall(r"LLM[A-Z][A-Za-z]+", m)}
    known = {a.value for a in AlertName}
    assert mentioned <= known, f"unknown alert names in alerts/alertmanager.yml: {mentioned - known}"
    assert AlertName.PROVIDER_OUTAGE.value in mentioned
