"""docker-compose.yml runs as written: it parses, what it mounts exists, ports don't collide, and the llmpulse
services are configured only with settings the code reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from llmpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LLMPULSE_SERVICES = ("migrate", "api", "collector", "scheduler")


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_compose_parses_and_runs_the_whole_stack() -> None:
    services = compose()["services"]
    assert {"kafka", "clickhouse", "grafana", "alertmanager", *LLMPULSE_SERVICES} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    assert services["alertmanager"]["image"].startswith("prom/alertmanager:")
    grafana_env = _environment(services["grafana"])
    assert grafana_env["GF_PLUGINS_PREINSTALL_SYNC"] == "grafana-clickhouse-datasource"
    for name in LLMPULSE_SERVICES:
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert (ROOT / services[name]["build"]["dockerfile"]).is_file()
    for name, service in services.items():
        if name == "migrate":
            assert services["migrate"]["healthcheck"] == {"disable": True}
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_mounted_config_file_exists_in_the_repo() -> None:
    spec = compose()
    named = set(spec.get("volumes") or {})
    for name, service in spec["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"
            else:
                assert source in named, f"{name} uses volume {source!r} that is not declared"
    assert (ROOT / "alerts" / "alertmanager.yml").is_file()


def test_host_ports_do_not_collide() -> None:
    published: dict[str, str] = {}
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            host = str(port).split(":")[-2] if str(port).count(":") >= 1 else str(port)
            assert host not in published, f"{name} and {published[host]} both publish {host}"
            published[host] = name
    assert {"3000", "8080", "9093", "8123", "19092"} <= set(published)


def test_llmpulse_services_only_set_settings_the_code_reads() -> None:
    fields = {f"LLMPULSE_{name.upper()}" for name in Settings.model_fields}
    for name in LLMPULSE_SERVICES:
        env = _environment(compose()["services"][name])
        assert env, name
        unknown = {k for k in env if k.startswith("LLMPULSE_")} - fields
        assert not unknown, f"{name} sets {sorted(unknown)}, which llmpulse.settings.Settings does not read"
        assert not {k for k in env if not k.startswith("LLMPULSE_")}, name


def test_llmpulse_service_settings_parse(monkeypatch: Any) -> None:
    for name in LLMPULSE_SERVICES:
        env = _environment(compose()["services"][name])
        for key, value in env.items():
            # Compose substitutes ${VAR:-default}; the default is what a plain `docker compose up` runs with.
            monkeypatch.setenv(key, re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value))
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.clickhouse_url.startswith("http://") and settings.clickhouse_url.endswith("/llmpulse")
        assert settings.kafka_bootstrap == "kafka:9092"
        for key in env:
            monkeypatch.delenv(key)


def test_grafana_reaches_clickhouse_as_the_read_only_user() -> None:
    services = compose()["services"]
    grafana_env = _environment(services["grafana"])
    assert grafana_env["LLMPULSE_GRAFANA_CLICKHOUSE_USER"] == "grafana"
    users = (ROOT / "deploy" / "clickhouse" / "users.d" / "grafana.xml").read_text("utf-8")
    assert "<grafana>" in users and "<readonly>2</readonly>" in users and "GRANT SELECT ON llmpulse.*" in users
    assert 'from_env="LLMPULSE_GRAFANA_CLICKHOUSE_PASSWORD"' in users
    assert "LLMPULSE_GRAFANA_CLICKHOUSE_PASSWORD" in _environment(services["clickhouse"])


def test_only_one_scheduler_runs_the_analyzers() -> None:
    services = compose()["services"]
    enabled = {name: _environment(services[name]).get("LLMPULSE_ANALYZERS_ENABLED") for name in ("api", "scheduler")}
    assert enabled == {"api": "false", "scheduler": "true"}
    assert "deploy" not in services["scheduler"] or services["scheduler"]["deploy"].get("replicas", 1) == 1
