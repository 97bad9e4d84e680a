"""What Grafana and the grafana-clickhouse-datasource plugin do to a panel's SQL before ClickHouse sees it.

Three steps, in the order the plugin runs them (src/data/CHDatasource.ts `applyTemplateVariables`, then the
backend's macro interpolation in pkg/macros):

1. `$__conditionalAll(condition, $var)` (frontend): the condition, or `1=1` when the variable's current value
   is All (`$__all`) or empty. Expanded right to left (`lastIndexOf`), arguments split on commas at the
   first bracket level, without regard to quotes.
2. Template variables (Grafana's templateSrv with the plugin's format function): `$var`, `${var}`,
   `${var:format}`, `[[var]]`. Without a format, the plugin quotes multi-value selections as `'a','b'` and
   leaves a single value raw; `${var:singlequote}` quotes every value and escapes `'` as `\\'`. All without a
   custom all-value means every option.
3. Backend macros (pkg/macros/macros.go, parsed by grafana/macropro): comments stripped first, then
   `$__timeFilter(c)` → `c >= toDateTime(FROM) AND c <= toDateTime(TO)`, `$__timeFilter_ms(c)`,
   `$__dateFilter(c)`, `$__dateTimeFilter(d, t)` / `$__dt`, `$__fromTime` / `$__toTime` → `toDateTime(sec)`,
   `_ms` variants → `fromUnixTimestamp64Milli(ms)`, `$__timeInterval(c)` →
   `toStartOfInterval(toDateTime(c), INTERVAL N second)`, `$__timeInterval_ms(c)`, `$__interval_s` → N
   (at least 1).

Plugin versions before macropro parsed macros with grafana-plugin-sdk-go's sqlutil, which splits arguments
on every comma and lets an argument-less macro swallow text up to the next parenthesised group.
`expand_backend_legacy` reproduces that parser, so a test can hold every shipped query to producing the
same SQL under both (it does, as long as macro arguments are plain column names and an argument-less
macro is not followed by a parenthesis before a closing one).

Pure functions, no I/O: the dashboards' panel test and `llmpulse report` both run SQL through `expand`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

ALL_VALUE = "$__all"


class MacroError(ValueError):
    """A panel's SQL cannot be expanded the way the plugin would (bad arguments, unknown macro...)."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise MacroError("time range bounds must be timezone-aware")
        if self.end <= self.start:
            raise MacroError(f"time range ends ({self.end}) before it starts ({self.start})")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable's current selection as Grafana holds it.

    `current`: one value, a list for multi-value variables; `ALL_VALUE` (or `[ALL_VALUE]`) when All is
    selected. `options`: the values All stands for when the variable has no custom all-value.
    """

    name: str
    current: str | Sequence[str] = ALL_VALUE
    options: Sequence[str] = ()
    all_value: str | None = None
    multi: bool = True

    @property
    def is_all(self) -> bool:
        return _js_to_string(self.current) in ("", ALL_VALUE)


@dataclass(frozen=True, slots=True)
class QueryContext:
    time_range: TimeRange
    interval_ms: int  # the panel's $__interval as Grafana computed it (see `grafana_interval_ms`)
    variables: Mapping[str, Variable] = field(default_factory=dict)


def _js_to_string(value: str | Sequence[str]) -> str:
    """JavaScript's Array.prototype.toString: elements joined by ','."""
    return value if isinstance(value, str) else ",".join(value)


# --- Grafana's interval (grafana-data rangeutil.calculateInterval / roundInterval) --------------------------

_ROUND_STEPS_MS: tuple[tuple[int, int], ...] = (
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000),
    (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000), (45_000, 30_000),
    (90_000, 60_000), (210_000, 120_000), (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000),
    (1_500_000, 1_200_000), (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
    (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000),
    (604_800_000, 86_400_000), (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000),
)


def round_interval_ms(interval_ms: float) -> int:
    for below, rounded in _ROUND_STEPS_MS:
        if interval_ms < below:
            return rounded
    return 31_536_000_000


_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w|y)\s*$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
            "y": 31_536_000_000}


def duration_ms(text: str) -> int:
    """Grafana interval notation ('1m', '30s', '1h') in milliseconds."""
    match = _DURATION.match(text)
    if not match:
        raise MacroError(f"invalid Grafana interval {text!r}: use e.g. 30s, 1m, 1h")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def grafana_interval_ms(time_range: TimeRange, *, max_data_points: int = 1000, min_interval: str | None = None) -> int:
    """The panel's $__interval: the range over its data points, rounded, and never below the min interval."""
    interval = round_interval_ms(time_range.seconds * 1000 / max(max_data_points, 1))
    if min_interval:
        interval = max(interval, duration_ms(min_interval))
    return interval


# --- step 1: $__conditionalAll (frontend) ----------------------------------------------------------------

_VAR_IN_ARG = re.compile(r"(?<=\$\{)[\w\d]+(?=\})|(?<=\$)[\w\d]+")


def _macro_args_js(query: str, args_index: int) -> list[str]:
    """CHDatasource.getMacroArgs: split at commas on bracket level 1; [] when the brackets never close."""
    args: list[str] = []
    bracket_count = 0
    last_arg_end = 1
    tail = query[args_index:]
    for match in re.finditer(r"\(|\)|,", tail):
        token = match.group(0)
        if token == "(":
            bracket_count += 1
        elif token == ")":
            bracket_count -= 1
        if token == "," and bracket_count == 1:
            args.append(tail[last_arg_end : match.end() - 1])
            last_arg_end = match.end()
        if bracket_count == 0:
            args.append(tail[last_arg_end : match.end() - 1])
            return args
    return []


def apply_conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    macro = "$__conditionalAll("
    index = sql.rfind(macro)
    while index != -1:
        params = _macro_args_js(sql, index + len(macro) - 1)
        if len(params) != 2:
            raise MacroError(
                f"$__conditionalAll at offset {index} needs 2 arguments (condition, $variable), got {len(params)}: "
                f"the plugin would leave the query unexpanded"
            )
        phrase = params[0]
        var_match = _VAR_IN_ARG.search(params[1].strip())
        if var_match:
            variable = variables.get(var_match.group(0))
            if variable is None:
                # Grafana: `key?.current.value.toString()` is undefined, so the condition stays in place.
                pass
            elif variable.is_all:
                phrase = "1=1"
        sql = sql.replace(f"{macro}{params[0]},{params[1]})", phrase, 1)
        index = sql.rfind(macro)
    return sql


# --- step 2: template variables (Grafana templateSrv + the plugin's format function) ---------------------

_TEMPLATE_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)


def _plugin_format(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return value
    return "'" + "','".join(value) + "'"


def _singlequote(value: str | Sequence[str]) -> str:
    values = [value] if isinstance(value, str) else list(value)
    return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)


def _doublequote(value: str | Sequence[str]) -> str:
    values = [value] if isinstance(value, str) else list(value)
    return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)


def _csv(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _raw(value: str | Sequence[str]) -> str:
    return _csv(value)


def _pipe(value: str | Sequence[str]) -> str:
    return value if isinstance(value, str) else "|".join(value)


def _sqlstring(value: str | Sequence[str]) -> str:
    values = [value] if isinstance(value, str) else list(value)
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


_FORMATS: dict[str, Callable[[str | Sequence[str]], str]] = {
    "singlequote": _singlequote,
    "doublequote": _doublequote,
    "sqlstring": _sqlstring,
    "csv": _csv,
    "raw": _raw,
    "pipe": _pipe,
    "text": _csv,
}


def apply_template_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        variable = variables.get(name)
        if variable is None:
            return match.group(0)  # macros ($__timeFilter...) and unknown names pass through untouched
        value: str | Sequence[str] = variable.current
        if variable.is_all:
            if variable.all_value is not None:
                if fmt not in ("text", "percentencode"):
                    # Grafana skips formatting a custom all-value (and re-interpolates it).
                    return apply_template_variables(variable.all_value, variables)
                value = variable.all_value
            else:
                value = list(variable.options)
        if fmt is None:
            return _plugin_format(value)
        formatter = _FORMATS.get(fmt)
        if formatter is None:
            raise MacroError(f"template variable format {fmt!r} of ${{{name}}} is not supported here")
        return formatter(value)

    return _TEMPLATE_VARIABLE.sub(substitute, sql)


# --- step 3: backend macros (pkg/macros/macros.go through grafana/macropro) ------------------------------


def _to_datetime(moment: datetime) -> str:
    return f"toDateTime({int(moment.timestamp())})"


def _to_datetime64(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({round(moment.timestamp() * 1000)})"


def _to_date(moment: datetime) -> str:
    return f"toDate('{moment.astimezone(UTC):%Y-%m-%d}')"


def _arity(name: str, args: Sequence[str], expected: int) -> None:
    if len(args) != expected:
        raise MacroError(f"$__{name}: expected {expected} argument(s), received {len(args)}: {list(args)}")


def _interval_seconds(ctx: QueryContext) -> int:
    return int(max(ctx.interval_ms / 1000, 1))


MacroFunc = Callable[[QueryContext, Sequence[str]], str]


def _m_time_filter(ctx: QueryContext, args: Sequence[str]) -> str:
    _arity("timeFilter", args, 1)
    c, r = args[0], ctx.time_range
    return f"{c} >= {_to_datetime(r.start)} AND {c} <= {_to_datetime(r.end)}"


def _m_time_filter_ms(ctx: QueryContext, args: Sequence[str]) -> str:
    _arity("timeFilter_ms", args, 1)
    c, r = args[0], ctx.time_range
    return f"{c} >= {_to_datetime64(r.start)} AND {c} <= {_to_datetime64(r.end)}"


def _m_date_filter(ctx: QueryContext, args: Sequence[str]) -> str:
    _arity("dateFilter", args, 1)
    c, r = args[0], ctx.time_range
    return f"{c} >= {_to_date(r.start)} AND {c} <= {_to_date(r.end)}"


def _m_date_time_filter(ctx: QueryContext, args: Sequence[str]) -> str:
    _arity("dateTimeFilter", args, 2)
    d, t, r = args[0], args[1], ctx.time_range
    return (
        f"({d} >= {_to_date(r.start)} AND {d} <= {_to_date(r.end)}) AND "
        f"({t} >= {_to_datetime(r.start)} AND {t} <= {_to_datetime(r.end)})"
    )


def _m_time_interval(ctx: QueryContext, args: Sequence[str]) -> str:
    _arity("timeInterval", args, 1)
    return f"toStartOfInterval(toDateTime({args[0]}), INTERVAL {_interval_seconds(ctx)} second)"


def _m_time_interval_ms(ctx: QueryContext, args: Sequence[str]) -> str:
    _arity("timeInterval_ms", args, 1)
    return f"toStartOfInterval(toDateTime64({args[0]}, 3), INTERVAL {max(ctx.interval_ms, 1)} millisecond)"


PLUGIN_MACROS: dict[str, MacroFunc] = {
    "fromTime": lambda ctx, _args: _to_datetime(ctx.time_range.start),
    "toTime": lambda ctx, _args: _to_datetime(ctx.time_range.end),
    "fromTime_ms": lambda ctx, _args: _to_datetime64(ctx.time_range.start),
    "toTime_ms": lambda ctx, _args: _to_datetime64(ctx.time_range.end),
    "timeFilter": _m_time_filter,
    "timeFilter_ms": _m_time_filter_ms,
    "dateFilter": _m_date_filter,
    "dateTimeFilter": _m_date_time_filter,
    "dt": _m_date_time_filter,
    "timeInterval": _m_time_interval,
    "timeInterval_ms": _m_time_interval_ms,
    "interval_s": lambda ctx, _args: str(_interval_seconds(ctx)),
}


def _scan_string_literal(s: str, pos: int) -> int:
    quote = s[pos]
    j = pos + 1
    while j < len(s):
        if s[j] == quote:
            if j + 1 < len(s) and s[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return j


def strip_comments(sql: str) -> str:
    """macropro.StripComments with -- and /* */: comment text becomes spaces, string literals are kept."""
    out = list(sql)
    i = 0
    while i < len(sql):
        c = sql[i]
        if c in ("'", '"'):
            i = _scan_string_literal(sql, i)
        elif sql.startswith("--", i):
            j = i
            while j < len(sql) and sql[j] not in "\r\n":
                out[j] = " "
                j += 1
            i = j
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            j = len(sql) if end == -1 else end + 2
            for k in range(i, j):
                if out[k] not in "\r\n":
                    out[k] = " "
            i = j
        else:
            i += 1
    return "".join(out)


def _find_closing_paren(s: str, open_index: int) -> int:
    depth = 0
    i = open_index
    while i < len(s):
        c = s[i]
        if c in ("'", '"'):
            i = _scan_string_literal(s, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _parse_args(raw: str) -> list[str]:
    raw = raw.strip()
    if not raw:
        return []
    args: list[str] = []
    depth = start = 0
    i = 0
    while i < len(raw):
        c = raw[i]
        if c in ("'", '"'):
            i = _scan_string_literal(raw, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            if depth == 0:
                raise MacroError(f"unexpected ')' at position {i} in macro arguments {raw!r}")
            depth -= 1
        elif c == "," and depth == 0:
            args.append(raw[start:i].strip())
            start = i + 1
        i += 1
    if depth:
        raise MacroError(f"unbalanced parentheses in macro arguments {raw!r}")
    args.append(raw[start:].strip())
    return args


def _is_name_char(c: str) -> bool:
    return c == "_" or (c.isascii() and c.isalnum())


def expand_backend(sql: str, ctx: QueryContext) -> str:
    """macropro.Interpolate with the plugin's macros: longest names first, `(...)` taken as arguments."""
    result = strip_comments(sql)
    for name in sorted(PLUGIN_MACROS, key=lambda n: (-len(n), n)):
        token = "$__" + name
        pieces: list[str] = []
        rest = result
        while True:
            index = rest.find(token)
            if index == -1:
                pieces.append(rest)
                break
            after = index + len(token)
            if after < len(rest) and _is_name_char(rest[after]):
                pieces.append(rest[:after])
                rest = rest[after:]
                continue
            pieces.append(rest[:index])
            rest = rest[after:]
            raw = ""
            if rest.startswith("("):
                end = _find_closing_paren(rest, 0)
                if end != -1:
                    raw, rest = rest[1:end], rest[end + 1 :]
            pieces.append(PLUGIN_MACROS[name](ctx, _parse_args(raw)))
        result = "".join(pieces)
    return result


def expand_backend_legacy(sql: str, ctx: QueryContext) -> str:
    """grafana-plugin-sdk-go sqlutil.Interpolate (plugin releases before macropro), for robustness checks."""
    result = sql
    for name in sorted(PLUGIN_MACROS):  # Go iterates a map in random order; the shipped SQL must not care
        matches: list[tuple[str, str]] = []
        for m in re.finditer(r"\$__" + re.escape(name) + r"\b", result):
            start = m.start()
            copy = result[start:]
            cache = 0
            macro_end = arg_start = 0
            force_break = False
            for idx, ch in enumerate(copy):
                if (cache == 0 and macro_end > 0) or force_break:
                    break
                if ch == "(":
                    cache += 1
                    if arg_start == 0:
                        arg_start = idx + 1
                elif ch == ")":
                    if cache == 0:
                        macro_end = 0
                        force_break = True
                        continue
                    cache -= 1
                    macro_end = idx + 1
            if macro_end == 0:
                macro_end = m.end() - start
            args = copy[arg_start : macro_end - 1] if arg_start > 0 else ""
            matches.append((copy[:macro_end], args))
        for whole, args in matches:
            parsed = [a.strip() for a in args.split(",")]
            result = result.replace(whole, PLUGIN_MACROS[name](ctx, parsed))
    return result


_LEFTOVER = re.compile(r"\$__\w+|\$\{[^}]*\}|\[\[\w+")


def expand(sql: str, ctx: QueryContext) -> str:
    """Everything Grafana and the plugin do to a panel's rawSql; raises when something stays unexpanded."""
    expanded = expand_backend(apply_template_variables(apply_conditional_all(sql, ctx.variables), ctx.variables), ctx)
    leftover = _LEFTOVER.search(expanded)
    if leftover:
        raise MacroError(f"{leftover.group(0)!r} is neither a plugin macro nor a defined template variable")
    return expanded


def interval_seconds_for(ctx: QueryContext) -> int:
    """What $__interval_s expands to."""
    return _interval_seconds(ctx)
