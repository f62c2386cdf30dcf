"""Alert rules for live rooms: a strict YAML format, a stateful engine, and a hot-reloading holder.

    version: 1
    rules:
      - name: sustained-synthetic
        signal: probability            # probability (detector) | watermark (injected checker)
        threshold: {default: 0.9, broadcast: 0.8}   # or one number for every room type
        sustain: {windows: 2}          # or {seconds: 6}: span of audio judged high, first start → last end
        max_gap: 0                     # seconds of unjudged (silent) audio a run may bridge
        cooldown: 120                  # stream seconds before this rule may fire again for one speaker
        severity: critical             # info | warning | critical
        room_types: [broadcast, kids]  # optional: only these room types
        actions: [alert, {webhook: "https://hooks.example.org/vw"}, {review: trust-safety}]

``load_rules`` refuses a bad file with the line number and the reason (``RulesError.line``). The
``RulesEngine`` keeps per-speaker run state across reloads; ``RulesHolder`` re-reads a file when its
mtime changes and keeps the previous rules when the new file is bad.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from voxwarden.live.events import Alert, WatermarkChecked, WindowScored, alert_key

log = logging.getLogger("voxwarden.live.rules")

SIGNALS = ("probability", "watermark")
SEVERITIES = ("info", "warning", "critical")
ACTIONS = ("alert", "webhook", "review")
MAX_RULES_BYTES = 1 << 20
MAX_RULES = 500
DEFAULT_ROOM_TYPE = "default"


class RulesError(ValueError):
    """A rules file that cannot be used; ``line`` is 1-based (None when the whole file is at fault)."""

    def __init__(self, reason: str, line: int | None = None, source: str = "rules") -> None:
        self.reason = reason
        self.line = line
        self.source = source
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "bad_rules", "message": str(self), "line": self.line, "reason": self.reason}


@dataclass(frozen=True)
class Rule:
    """One parsed rule. ``thresholds`` maps room type → threshold (``default`` for any other type)."""

    name: str
    thresholds: dict[str, float]
    signal: str = "probability"
    sustain_windows: int = 1
    sustain_seconds: float | None = None
    max_gap: float = 0.0
    cooldown: float = 60.0
    severity: str = "warning"
    room_types: tuple[str, ...] | None = None
    actions: tuple[dict[str, Any], ...] = ({"type": "alert"},)
    line: int | None = None

    def threshold_for(self, room_type: str) -> float | None:
        """The threshold in this room type, or None when the rule does not apply there."""
        if self.room_types is not None and room_type not in self.room_types:
            return None
        if room_type in self.thresholds:
            return self.thresholds[room_type]
        return self.thresholds.get(DEFAULT_ROOM_TYPE)


@dataclass(frozen=True)
class RuleSet:
    """An immutable, validated set of rules (what ``load_rules`` returns)."""

    rules: tuple[Rule, ...] = ()
    source: str = "rules"

    def __len__(self) -> int:
        return len(self.rules)

    def names(self) -> list[str]:
        return [r.name for r in self.rules]


# -- parsing -------------------------------------------------------------------------------------


class _Parser:
    """Walks the composed YAML node tree so every complaint can name the line it is about."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._ctor = yaml.SafeLoader("")

    def fail(self, node: Node | None, reason: str) -> RulesError:
        line = node.start_mark.line + 1 if node is not None and node.start_mark is not None else None
        return RulesError(reason, line, self.source)

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, tuple[Node, Node]] = {}
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                raise self.fail(k, f"{what}: keys must be plain strings")
            key = str(k.value)
            if key in out:
                raise self.fail(k, f"{what}: duplicate key {key!r}")
            if allowed and key not in allowed:
                raise self.fail(k, f"{what}: unknown key {key!r} (allowed: {', '.join(allowed)})")
            out[key] = (k, v)
        return out

    def scalar(self, node: Node, what: str) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, f"{what} must be a single value, not a {type(node).__name__[:-4].lower()}")
        try:
            return self._ctor.construct_object(node)
        except yaml.YAMLError as e:
            raise self.fail(node, f"{what}: {e}") from None

    def string(self, node: Node, what: str, *, max_len: int = 200) -> str:
        v = self.scalar(node, what)
        if not isinstance(v, str) or not v.strip():
            raise self.fail(node, f"{what} must be a non-empty string")
        if len(v) > max_len:
            raise self.fail(node, f"{what} is longer than {max_len} characters")
        return v

    def number(self, node: Node, what: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
        v = self.scalar(node, what)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
            raise self.fail(node, f"{what} must be a number, got {node.value!r}")
        v = float(v)
        if v < lo or v > hi or (lo_open and v == lo):
            lo_s = f"({lo}" if lo_open else f"[{lo}"
            raise self.fail(node, f"{what} must be in {lo_s}, {hi}], got {v:g}")
        return v

    def integer(self, node: Node, what: str, lo: int, hi: int) -> int:
        v = self.scalar(node, what)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(node, f"{what} must be a whole number, got {node.value!r}")
        if not lo <= v <= hi:
            raise self.fail(node, f"{what} must be between {lo} and {hi}, got {v}")
        return v

    def sequence(self, node: Node, what: str, max_items: int) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        if len(node.value) > max_items:
            raise self.fail(node, f"{what} has more than {max_items} entries")
        return list(node.value)


_RULE_KEYS = ("name", "signal", "threshold", "sustain", "max_gap", "cooldown", "severity", "room_types",
              "actions", "description")


def load_rules(text: str | bytes, source: str = "rules") -> RuleSet:
    """Parse and validate rules YAML; raises ``RulesError`` naming the line and the reason."""
    if isinstance(text, bytes):
        if len(text) > MAX_RULES_BYTES:
            raise RulesError(f"file is larger than {MAX_RULES_BYTES} bytes", None, source)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RulesError(f"not UTF-8 text ({e.reason} at byte {e.start})", None, source) from None
    if len(text) > MAX_RULES_BYTES:
        raise RulesError(f"file is larger than {MAX_RULES_BYTES} bytes", None, source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        reason = " ".join(str(p) for p in (e.context, e.problem) if p) or "invalid YAML"
        raise RulesError(f"invalid YAML: {reason}", mark.line + 1 if mark else None, source) from None
    except yaml.YAMLError as e:
        raise RulesError(f"invalid YAML: {e}", None, source) from None
    p = _Parser(source)
    if root is None:
        raise RulesError("empty rules file (expected 'version: 1' and a 'rules' list)", 1, source)
    top = p.mapping(root, "rules file", ("version", "rules"))
    if "version" in top:
        k, v = top["version"]
        if p.integer(v, "version", 0, 10**6) != 1:
            raise p.fail(v, "unsupported version (this voxwarden reads version 1)")
    if "rules" not in top:
        raise p.fail(root, "missing key 'rules' (a list of rules)")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for rn in p.sequence(top["rules"][1], "rules", MAX_RULES):
        rule = _parse_rule(p, rn)
        if rule.name in seen:
            raise p.fail(rn, f"duplicate rule name {rule.name!r} (first on line {seen[rule.name]})")
        seen[rule.name] = rule.line or 0
        rules.append(rule)
    return RuleSet(tuple(rules), source)


def _parse_rule(p: _Parser, node: Node) -> Rule:
    m = p.mapping(node, "rule", _RULE_KEYS)
    if "name" not in m:
        raise p.fail(node, "rule is missing 'name'")
    name = p.string(m["name"][1], "name", max_len=100)
    what = f"rule {name!r}"
    signal = "probability"
    if "signal" in m:
        signal = p.string(m["signal"][1], f"{what}: signal")
        if signal not in SIGNALS:
            raise p.fail(m["signal"][1], f"{what}: signal must be one of {', '.join(SIGNALS)}")
    if "threshold" not in m:
        if signal != "watermark":
            raise p.fail(node, f"{what} is missing 'threshold' (a probability, or one per room type)")
        thresholds = {DEFAULT_ROOM_TYPE: 0.5}
    else:
        tn = m["threshold"][1]
        if isinstance(tn, MappingNode):
            thresholds = {}
            for key, (_, vn) in p.mapping(tn, f"{what}: threshold", ()).items():
                thresholds[key] = p.number(vn, f"{what}: threshold for room type {key!r}", 0.0, 1.0)
            if not thresholds:
                raise p.fail(tn, f"{what}: threshold mapping is empty")
        else:
            thresholds = {DEFAULT_ROOM_TYPE: p.number(tn, f"{what}: threshold", 0.0, 1.0)}
    sustain_windows, sustain_seconds = 1, None
    if "sustain" in m:
        sn = m["sustain"][1]
        sm = p.mapping(sn, f"{what}: sustain", ("windows", "seconds"))
        if len(sm) != 1:
            raise p.fail(sn, f"{what}: sustain needs exactly one of 'windows' or 'seconds'")
        if "windows" in sm:
            sustain_windows = p.integer(sm["windows"][1], f"{what}: sustain windows", 1, 10_000)
        else:
            sustain_seconds = p.number(sm["seconds"][1], f"{what}: sustain seconds", 0.0, 86400.0,
                                       lo_open=True)
            sustain_windows = 1
    max_gap = p.number(m["max_gap"][1], f"{what}: max_gap", 0.0, 3600.0) if "max_gap" in m else 0.0
    cooldown = p.number(m["cooldown"][1], f"{what}: cooldown", 0.0, 86400.0) if "cooldown" in m else 60.0
    severity = "warning"
    if "severity" in m:
        severity = p.string(m["severity"][1], f"{what}: severity")
        if severity not in SEVERITIES:
            raise p.fail(m["severity"][1], f"{what}: severity must be one of {', '.join(SEVERITIES)}")
    room_types = None
    if "room_types" in m:
        items = p.sequence(m["room_types"][1], f"{what}: room_types", 1000)
        if not items:
            raise p.fail(m["room_types"][1], f"{what}: room_types is empty (the rule could never fire)")
        room_types = tuple(p.string(n, f"{what}: room type", max_len=100) for n in items)
    actions: tuple[dict[str, Any], ...] = ({"type": "alert"},)
    if "actions" in m:
        items = p.sequence(m["actions"][1], f"{what}: actions", 20)
        if not items:
            raise p.fail(m["actions"][1], f"{what}: actions is empty")
        actions = tuple(_parse_action(p, n, what) for n in items)
    if "description" in m:
        p.string(m["description"][1], f"{what}: description", max_len=2000)
    return Rule(name=name, thresholds=thresholds, signal=signal, sustain_windows=sustain_windows,
                sustain_seconds=sustain_seconds, max_gap=max_gap, cooldown=cooldown, severity=severity,
                room_types=room_types, actions=actions, line=node.start_mark.line + 1)


def _parse_action(p: _Parser, node: Node, what: str) -> dict[str, Any]:
    if isinstance(node, ScalarNode):
        kind = p.string(node, f"{what}: action")
        if kind == "alert":
            return {"type": "alert"}
        if kind == "review":
            return {"type": "review", "queue": "default"}
        if kind == "webhook":
            raise p.fail(node, f"{what}: webhook needs a URL, e.g. '- webhook: https://example.org/hook'")
        raise p.fail(node, f"{what}: unknown action {kind!r} (known: {', '.join(ACTIONS)})")
    m = p.mapping(node, f"{what}: action", ACTIONS)
    if len(m) != 1:
        raise p.fail(node, f"{what}: each action is one of {', '.join(ACTIONS)}")
    kind, (_, vn) = next(iter(m.items()))
    if kind == "webhook":
        url = p.string(vn, f"{what}: webhook URL", max_len=2000)
        u = urlparse(url)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise p.fail(vn, f"{what}: webhook URL must be http(s)://host/..., got {url!r}")
        return {"type": "webhook", "url": url}
    if kind == "review":
        return {"type": "review", "queue": p.string(vn, f"{what}: review queue", max_len=100)}
    raise p.fail(vn, f"{what}: 'alert' takes no value; write '- alert'")


def load_rules_file(path: str | os.PathLike) -> RuleSet:
    """Read and parse a rules file; unreadable files are a ``RulesError`` too."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_RULES_BYTES:
            raise RulesError(f"file is larger than {MAX_RULES_BYTES} bytes", None, str(p))
        data = p.read_bytes()
    except OSError as e:
        raise RulesError(f"cannot read rules file ({e.strerror or e})", None, str(p)) from None
    return load_rules(data, source=str(p))


# -- hot reload ----------------------------------------------------------------------------------


class RulesHolder:
    """The current rules of a file, re-read when its mtime (or size) changes; a bad new file keeps the old
    rules and records the error in ``last_error``. The first load must succeed (it raises otherwise)."""

    def __init__(self, path: str | os.PathLike, *, check_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.check_interval = float(check_interval)
        self.last_error: RulesError | None = None
        self.reloads = 0
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._rules = load_rules_file(self.path)
        self._checked = time.monotonic()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def get(self) -> RuleSet:
        """The rules in force, checking the file at most every ``check_interval`` seconds."""
        now = time.monotonic()
        if now - self._checked >= self.check_interval:
            self.reload_if_changed()
        return self._rules

    def reload_if_changed(self) -> bool:
        """Check the file now; True when new rules were loaded."""
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._stat()
            if stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                rules = load_rules_file(self.path)
            except RulesError as e:
                self.last_error = e
                log.error("rules reload failed, keeping the previous %d rules: %s", len(self._rules), e)
                return False
            self._rules = rules
            self.last_error = None
            self.reloads += 1
            log.info("rules reloaded from %s: %d rules", self.path, len(rules))
            return True


# -- engine --------------------------------------------------------------------------------------


@dataclass
class _RunState:
    run_start: float | None = None  # stream seconds of the first high window of the current run
    run_end: float = 0.0
    run_windows: int = 0
    cooled_until: float = -math.inf  # stream seconds: no firing for windows ending before this


@dataclass
class RulesEngine:
    """Turns scored windows into alerts: per (room, speaker, rule) runs of high windows, sustain, cooldown.

    Time is stream time (seconds of audio), not wall time, so a replay of the same audio after a crash
    fires the same alerts with the same keys. ``seen_keys`` also drops a key already emitted in-process.
    """

    rules: RuleSet | RulesHolder = field(default_factory=RuleSet)
    max_keys: int = 100_000

    def __post_init__(self) -> None:
        self._state: dict[tuple[str, str, str], _RunState] = {}
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def current(self) -> RuleSet:
        return self.rules.get() if isinstance(self.rules, RulesHolder) else self.rules

    def span_needed(self, window: float, hop: float, ruleset: RuleSet | None = None) -> float:
        """Seconds of audio a first alert of the current rules spans at most (run start → firing
        window's end, gaps bridged by ``max_gap`` included): what a session keeps for alert evidence."""
        need = 0.0
        for r in (ruleset or self.current()).rules:
            if r.sustain_seconds:
                span = r.sustain_seconds + hop + window
            else:
                span = (max(1, r.sustain_windows) - 1) * hop + window
            need = max(need, span + max(0.0, r.max_gap) * max(1, r.sustain_windows))
        return need

    def evaluate(self, w: WindowScored | WatermarkChecked, room_type: str = DEFAULT_ROOM_TYPE) -> list[Alert]:
        """Feed one scored window or watermark check (each kind in stream order for its speaker); returns
        the alerts it triggers. A window is judged by ``probability`` rules, a check by ``watermark``
        rules (a check that did not judge, ``present`` None, is skipped: unjudged, never "absent")."""
        out: list[Alert] = []
        ruleset = self.current()
        with self._lock:
            for rule in ruleset.rules:
                thr = rule.threshold_for(room_type)
                if thr is None:
                    continue
                value = _signal_value(rule.signal, w)
                if value is None:
                    continue
                st = self._state.setdefault((w.room, w.speaker, rule.name), _RunState())
                alert = self._step(rule, st, w, value, thr)
                if alert is not None:
                    out.append(alert)
        return out

    def _step(self, rule: Rule, st: _RunState, w: WindowScored | WatermarkChecked, value: float,
              thr: float) -> Alert | None:
        if value < thr:
            st.run_start, st.run_windows = None, 0
            return None
        if st.run_start is None or w.start > st.run_end + rule.max_gap + 1e-9:
            st.run_start, st.run_windows = w.start, 0
        st.run_windows += 1
        st.run_end = w.end
        sustained = (st.run_end - st.run_start >= rule.sustain_seconds - 1e-9) if rule.sustain_seconds \
            else st.run_windows >= rule.sustain_windows
        if not sustained or w.end < st.cooled_until - 1e-9:
            return None
        st.cooled_until = w.end + rule.cooldown
        window_start = round(w.stream_start + w.start, 3)
        alert = Alert(
            room=w.room, speaker=w.speaker, session=w.session, rule=rule.name, severity=rule.severity,
            window_start=window_start, window_end=round(w.stream_start + w.end, 3), start=w.start, end=w.end,
            run_start=st.run_start, windows=st.run_windows, probability=value, threshold=thr,
            signal=rule.signal, actions=[dict(a) for a in rule.actions],
            watermark=w.result() if isinstance(w, WatermarkChecked) else None,
            reason=(f"{rule.signal} {value:.3f} >= {thr:g} for {st.run_windows} "
                    f"{'check(s)' if isinstance(w, WatermarkChecked) else 'window(s)'}, "
                    f"{st.run_end - st.run_start:.1f} s of audio"),
        )
        key = alert.key
        if key in self._keys:
            return None
        self._keys[key] = None
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return alert

    def forget(self, room: str, speaker: str) -> None:
        """Drop run state of a speaker whose session ended for good (alert keys are kept)."""
        with self._lock:
            for k in [k for k in self._state if k[0] == room and k[1] == speaker]:
                del self._state[k]

    def seen(self, key: str) -> bool:
        return key in self._keys

    def export_state(self, room: str, speaker: str) -> dict[str, dict[str, Any]]:
        """A speaker's run state per rule, JSON-able (for ``SessionCheckpoint``)."""
        with self._lock:
            return {k[2]: {"run_start": st.run_start, "run_end": st.run_end, "run_windows": st.run_windows,
                           "cooled_until": None if st.cooled_until == -math.inf else st.cooled_until}
                    for k, st in self._state.items() if k[0] == room and k[1] == speaker}

    def import_state(self, room: str, speaker: str, data: dict[str, dict[str, Any]]) -> None:
        """Restore what ``export_state`` gave; malformed entries are skipped (the run just restarts)."""
        with self._lock:
            for rule, d in data.items():
                try:
                    rs = d.get("run_start")
                    cu = d.get("cooled_until")
                    st = _RunState(run_start=None if rs is None else float(rs), run_end=float(d["run_end"]),
                                   run_windows=int(d["run_windows"]),
                                   cooled_until=-math.inf if cu is None else float(cu))
                except (AttributeError, KeyError, TypeError, ValueError):
                    continue
                self._state[(room, speaker, str(rule))] = st


def _signal_value(signal: str, w: WindowScored | WatermarkChecked) -> float | None:
    """The rule's value for this event, or None when the event does not judge that signal."""
    if isinstance(w, WatermarkChecked):
        if signal != "watermark":
            return None
        wm: dict[str, Any] | None = {"present": w.present, "confidence": w.confidence,
                                     **({"error": w.error} if w.error is not None else {})}
    elif signal == "probability":
        return float(w.probability)
    else:  # a window that carries a check itself (callers of the core that set it)
        wm = w.watermark
    if not wm or "error" in wm or wm.get("present") is None:
        return None
    if not wm.get("present"):
        return 0.0
    conf = wm.get("confidence")
    return float(conf) if isinstance(conf, int | float) and not isinstance(conf, bool) else 1.0


def alert_key_for(rule: str, w: WindowScored | WatermarkChecked) -> str:
    """The key an alert fired on window ``w`` by ``rule`` gets (for stores checking before insert)."""
    return alert_key(w.room, w.speaker, rule, round(w.stream_start + w.start, 3))
