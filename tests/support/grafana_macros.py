"""The grafana-clickhouse-datasource macro expansion for tests: re-exported from dashboards/macros.py, which
`llmpulse report` uses too (one implementation of the plugin's semantics)."""

from dashboards.macros import (
    ALL_VALUE,
    MacroError,
    QueryContext,
    TimeRange,
    Variable,
    apply_conditional_all,
    apply_template_variables,
    expand,
    expand_backend,
    expand_backend_legacy,
    grafana_interval_ms,
    round_interval_ms,
    strip_comments,
)

__all__ = [
    "ALL_VALUE",
    "MacroError",
    "QueryContext",
    "TimeRange",
    "Variable",
    "apply_conditional_all",
    "apply_template_variables",
    "expand",
    "expand_backend",
    "expand_backend_legacy",
    "grafana_interval_ms",
    "round_interval_ms",
    "strip_comments",
]
