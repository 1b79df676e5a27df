"""Alert rules, receivers and routes: their YAML format, validated with errors that name the line.

A configuration is one or more YAML files with any of ``rules``, ``receivers``
and ``route``. The shipped pack (``default_rules.yaml``) comes first; a user's
rule with the same name replaces the shipped one (``enabled: false`` turns it
off). Every problem is reported at once as ``file:line: where: what``.
"""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from alerting.catalog import AGGREGATIONS_OF, METRICS, ZERO_WHEN_EMPTY, Aggregation

DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")
# Alertmanager's defaults.
GROUP_WAIT = timedelta(seconds=30)
GROUP_INTERVAL = timedelta(minutes=5)
REPEAT_INTERVAL = timedelta(hours=4)
DEFAULT_GROUP_BY = ("alertname",)

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_PLACEHOLDER = re.compile(r"\{\{\s*\$?([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MATCHER = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def parse_duration(value: Any) -> timedelta:
    """``90``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    match = _DURATION.match(value.strip()) if isinstance(value, str) and value.strip() else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration: write it like 30s, 5m, 1h30m or 2d")
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Comparison = Literal[">", ">=", "<", "<=", "==", "!="]
COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
Severity = Literal["critical", "error", "warning", "info"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Condition(_Strict):
    """A metric aggregated over a window, compared with a threshold."""

    metric: str
    aggregation: Aggregation
    window: Duration
    comparison: Comparison
    threshold: float
    filters: dict[str, str | list[str]] = {}
    # Fewer rows than this in the window count as no data (a ratio over 2 requests is noise).
    min_samples: int = Field(default=0, ge=0)

    def breached(self, value: float | None) -> bool:
        """Whether ``value`` meets the condition; no value never does."""
        return value is not None and COMPARE[self.comparison](value, self.threshold)

    @property
    def zero_when_empty(self) -> bool:
        """Whether no rows at all is a 0 (nothing happened) rather than no data."""
        return self.aggregation in ZERO_WHEN_EMPTY and self.min_samples == 0


class Rule(Condition):
    name: str = Field(pattern=_NAME)
    # One alert per distinct value of these labels (e.g. per model or per GPU).
    group_by: list[str] = []
    for_: Duration = Field(default=timedelta(0), alias="for")
    keep_firing_for: Duration = timedelta(0)
    # How often this rule is evaluated; default: the engine's interval.
    interval: Duration | None = None
    severity: Severity = "warning"
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    no_data: Literal["ok", "alert", "keep_state"] = "ok"
    # Further conditions that must all hold (over all label values) for the rule to fire.
    while_: list[Condition] = Field(default=[], alias="while")
    enabled: bool = True


@dataclass(frozen=True)
class Matcher:
    """Alertmanager's label matcher: ``name=value``, ``!=``, ``=~`` (regex) or ``!~``."""

    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        match = _MATCHER.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a matcher: write name=value, !=, =~ or !~")
        name, op, value = match.groups()
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{text!r}: bad regular expression: {exc}") from None
        return cls(name, op, value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def _matchers(value: Any) -> Any:
    if isinstance(value, list):
        return [m if isinstance(m, Matcher) else Matcher.parse(str(m)) for m in value]
    return value


Matchers = Annotated[list[Matcher], BeforeValidator(_matchers)]


class WebhookConfig(_Strict):
    url: str = Field(pattern=r"^https?://")
    # With a secret, each request carries X-InferWatch-Signature (HMAC-SHA256).
    secret: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class SlackConfig(_Strict):
    url: str = Field(pattern=r"^https?://")
    channel: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class EmailConfig(_Strict):
    to: list[str] = Field(min_length=1)
    from_: str = Field(alias="from")
    smarthost: str = Field(pattern=r"^[^:\s]+:\d+$")
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = True
    timeout_s: float = Field(default=10.0, gt=0)


class PagerDutyConfig(_Strict):
    routing_key: SecretStr
    url: str = Field(default="https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://")
    timeout_s: float = Field(default=10.0, gt=0)


class Receiver(_Strict):
    name: str = Field(min_length=1)
    send_resolved: bool = True
    webhook: WebhookConfig | None = None
    slack: SlackConfig | None = None
    email: EmailConfig | None = None
    pagerduty: PagerDutyConfig | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> Receiver:
        channels = [self.webhook, self.slack, self.email, self.pagerduty]
        if sum(c is not None for c in channels) != 1:
            raise ValueError("a receiver has exactly one of webhook, slack, email, pagerduty")
        return self


class Route(_Strict):
    """Alertmanager's routing tree: children inherit what they leave unset."""

    receiver: str | None = None
    matchers: Matchers = []
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = []


class FileConfig(_Strict):
    rules: list[Rule] = []
    receivers: list[Receiver] = []
    route: Route | None = None


@dataclass(frozen=True)
class AlertConfig:
    rules: list[Rule]
    receivers: dict[str, Receiver]
    route: Route


class ConfigError(Exception):
    """Everything wrong with a configuration, one ``file:line: where: what`` per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _line(node: yaml.Node | None, loc: Sequence[int | str]) -> int:
    """1-based line of the deepest node ``loc`` reaches in the composed YAML."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for key in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == key:
                    child = v
                    line = k.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key >= 0:
            child = node.value[key] if key < len(node.value) else None
        if child is None:
            break
        node = child
        line = max(line, node.start_mark.line + 1)
    return line


def _where(loc: Sequence[int | str]) -> str:
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "(top)"


def _expand_env(
    value: Any, environ: Mapping[str, str], loc: tuple[Any, ...], missing: list[Any]
) -> Any:
    """``${VAR}`` in receiver settings, so secrets stay out of the file."""
    if isinstance(value, str):

        def lookup(m: re.Match[str]) -> str:
            if m.group(1) not in environ:
                missing.append((loc, f"environment variable {m.group(1)} is not set"))
                return ""
            return environ[m.group(1)]

        return _ENV.sub(lookup, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, environ, (*loc, k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, environ, (*loc, i), missing) for i, v in enumerate(value)]
    return value


def _check_condition(cond: Condition, loc: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    problems: list[tuple[tuple[Any, ...], str]] = []
    metric = METRICS.get(cond.metric)
    if metric is None:
        known = ", ".join(sorted(METRICS))
        return [((*loc, "metric"), f"unknown metric {cond.metric!r}; known: {known}")]
    if cond.aggregation not in AGGREGATIONS_OF[metric.kind]:
        allowed = ", ".join(sorted(AGGREGATIONS_OF[metric.kind]))
        problems.append(
            (
                (*loc, "aggregation"),
                f"{cond.metric} is a {metric.kind.value} metric: aggregate it with {allowed}",
            )
        )
    if cond.window <= timedelta(0):
        problems.append(((*loc, "window"), "the window must be longer than 0s"))
    labels = metric.source.labels
    for name in cond.filters:
        if name not in labels:
            problems.append(((*loc, "filters", name), _no_label(cond.metric, name, labels)))
    return problems


def _no_label(metric: str, name: str, labels: Mapping[str, Any]) -> str:
    return f"{metric} has no label {name!r}; it has: {', '.join(sorted(labels))}"


def _check_rule(rule: Rule, loc: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    problems = _check_condition(rule, loc)
    metric = METRICS.get(rule.metric)
    if metric is not None:
        for i, name in enumerate(rule.group_by):
            if name not in metric.source.labels:
                problems.append(
                    ((*loc, "group_by", i), _no_label(rule.metric, name, metric.source.labels))
                )
    for i, cond in enumerate(rule.while_):
        problems += _check_condition(cond, (*loc, "while", i))
    for key, template in rule.annotations.items():
        for name in _PLACEHOLDER.findall(template):
            if name not in ("value", "threshold") and not name.startswith("labels."):
                problems.append(
                    (
                        (*loc, "annotations", key),
                        f"unknown placeholder {name!r}: use value, threshold or labels.NAME",
                    )
                )
    for reserved in ("alertname", "severity"):
        if reserved in rule.labels:
            problems.append(((*loc, "labels", reserved), f"{reserved} is set by the rule itself"))
    return problems


def render(template: str, value: float | None, threshold: float, labels: Mapping[str, str]) -> str:
    """Fills ``{{ value }}``, ``{{ threshold }}`` and ``{{ labels.NAME }}`` (``$`` optional)."""

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "value":
            return "no data" if value is None else f"{value:.4g}"
        if name == "threshold":
            return f"{threshold:.4g}"
        return labels.get(name.removeprefix("labels."), "")

    return _PLACEHOLDER.sub(fill, template)


def _load_file(path: Path, environ: Mapping[str, str], problems: list[str]) -> FileConfig | None:
    try:
        text = path.read_text()
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror or exc}")
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problems.append(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}")
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(f"{path}:1: expected a mapping with rules, receivers and route")
        return None
    found: list[tuple[tuple[Any, ...], str]] = []
    if "receivers" in data:
        data["receivers"] = _expand_env(data["receivers"], environ, ("receivers",), found)
    try:
        config = FileConfig.model_validate(data)
    except ValidationError as exc:
        found += [(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
        config = None
    if config is not None:
        for i, rule in enumerate(config.rules):
            found += _check_rule(rule, ("rules", i))
        names = [rule.name for rule in config.rules]
        for i, name in enumerate(names):
            if name in names[:i]:
                found.append((("rules", i, "name"), f"rule {name!r} is defined twice in this file"))
    problems += [f"{path}:{_line(node, loc)}: {_where(loc)}: {msg}" for loc, msg in found]
    return None if found else config


def load_config(
    paths: Sequence[Path],
    *,
    defaults: bool = True,
    environ: Mapping[str, str] | None = None,
) -> AlertConfig:
    """The shipped pack (unless ``defaults`` is off), then ``paths`` in order."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    files = [DEFAULT_RULES, *paths] if defaults else list(paths)
    loaded = [(path, _load_file(path, environ, problems)) for path in files]
    rules: dict[str, Rule] = {}
    receivers: dict[str, Receiver] = {}
    route: Route | None = None
    for path, config in loaded:
        if config is None:
            continue
        for rule in config.rules:
            rules[rule.name] = rule
        for receiver in config.receivers:
            if receiver.name in receivers:
                problems.append(f"{path}: receiver {receiver.name!r} is defined twice")
            receivers[receiver.name] = receiver
        if config.route is not None:
            if route is not None:
                problems.append(f"{path}: a second route tree (only one file may have `route`)")
            route = config.route
    if route is None:
        route = Route(receiver=next(iter(receivers), None))
    elif route.receiver is None:
        problems.append("route: the top route needs a receiver")
    problems += [
        f"route: unknown receiver {name!r}"
        for name in _route_receivers(route)
        if name not in receivers and name is not None
    ]
    if problems:
        raise ConfigError(problems)
    return AlertConfig([r for r in rules.values() if r.enabled], receivers, route)


def _route_receivers(route: Route) -> list[str | None]:
    return [route.receiver, *(name for child in route.routes for name in _route_receivers(child))]
