"""Control files: the packaged ones load, and every kind of bad file is refused naming file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from voxwarden.assess.controls import (
    FEATURE_TYPES,
    SEVERITIES,
    ControlFileError,
    load_control_file,
    load_controls,
    packaged_control_files,
    parse_condition,
    parse_control_text,
)

GOOD = textwrap.dedent("""\
    framework: test-fw
    title: Test framework
    regulation: Test regulation
    version: 1
    controls:
      - id: T-1
        title: Logs kept
        requirement: Keep logs.
        source: {regulation: Test regulation, article: "Art. 5", topic: logs}
        evidence: [logging.retention_days]
        rule:
          met: "logging.retention_days >= 184"
          partly: "logging.retention_days >= 180"
        severity: high
        applies_to: [voice_social]
      - id: T-2
        title: Notice
        requirement: Say it.
        source: {regulation: Test regulation, topic: notices}
        evidence: [labelling.notice_positions, labelling.explicit_audio_notice]
        rule:
          met: {all: ["labelling.explicit_audio_notice is true", {any: ["labelling.notice_positions contains start",
                "labelling.notice_positions contains end"]}]}
        severity: low
    """)


def test_packaged_files_load_and_are_consistent() -> None:
    files = packaged_control_files()
    assert {f.name for f in files} == {
        "cac-2018-security-assessment.yaml", "deep-synthesis-2023.yaml", "labelling-2025-gb45438.yaml"}
    sets = load_controls()
    assert [s.framework for s in sets] == [f.stem for f in files]
    for cs in sets:
        assert len(cs.controls) >= 8
        for c in cs.controls:
            assert c.severity in SEVERITIES
            assert set(c.applies_to) <= set(FEATURE_TYPES)
            assert c.source.regulation and c.source.topic and c.requirement
            assert all(k.split(".")[0] in {"governance", "logging", "detection", "live", "labelling"}
                       for k in c.evidence)
    cac = sets[0].get("CAC18-LOG-RETENTION")
    assert cac.met.text == "logging.retention_days >= 184" and cac.if_missing == "not_met"
    assert sets[1].get("DS23-CONSPICUOUS-LABEL").source.article == "Art. 17"


def test_good_text_parses() -> None:
    cs = parse_control_text(GOOD, "good.yaml")
    assert cs.framework == "test-fw" and [c.id for c in cs.controls] == ["T-1", "T-2"]
    t1, t2 = cs.controls
    assert t1.line == 6 and t2.line == 16
    assert t1.source.cite() == "Test regulation, Art. 5 (logs)"
    assert t2.applies_to == ("any",) and t2.if_missing == "not_assessed"
    assert t2.met.kind == "all" and t2.met.keys() == {"labelling.explicit_audio_notice", "labelling.notice_positions"}
    assert cs.evidence_keys() == {"logging.retention_days", "labelling.notice_positions",
                                  "labelling.explicit_audio_notice"}


@pytest.mark.parametrize(("old", "new", "line", "words"), [
    ("severity: high", "severity: urgent", 6, "severity"),
    ("applies_to: [voice_social]", "applies_to: [toasters]", 15, "unknown feature type 'toasters'"),
    ('met: "logging.retention_days >= 184"', 'met: "logging.retention_days >= lots"', 12, "needs a number"),
    ('met: "logging.retention_days >= 184"', 'met: "logging.retention_days ~ 184"', 12, "cannot read condition"),
    ('met: "logging.retention_days >= 184"', 'met: "logging.other >= 184"', 12, "not listed under 'evidence'"),
    ("id: T-2", "id: T-1", 16, "repeats"),
    ("    title: Notice\n", "    title: Notice\n    colour: red\n", 16, "unknown field 'colour'"),
    ("evidence: [logging.retention_days]", "evidence: [Logging Days]", 10, "bad evidence key"),
    ("evidence: [logging.retention_days]", "evidence: []", 6, "non-empty list"),
    ("topic: logs}", "topic: logs, kept}", 9, "unknown source field"),
    ("version: 1", "version: one", 1, "version"),
    ("version: 1\n", "version: 1\nversion: 2\n", 1, "duplicate key"),
    ("  - id: T-1\n", "  - id: T-1\n   bad: [\n", None, "not valid YAML"),
])
def test_bad_text_names_line(old: str, new: str, line: int | None, words: str) -> None:
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    with pytest.raises(ControlFileError) as ei:
        parse_control_text(text, "bad.yaml")
    e = ei.value
    assert words in str(e)
    assert str(e).startswith("bad.yaml")
    if line is not None:
        assert e.line == line, str(e)
    else:
        assert e.line is not None


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text", "framework: x\n", "\x00\x01"])
def test_not_a_control_file(text: str) -> None:
    with pytest.raises(ControlFileError):
        parse_control_text(text, "x.yaml")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ControlFileError, match="cannot read"):
        load_control_file(tmp_path / "missing.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("title: caf\xe9".encode("latin-1"))
    with pytest.raises(ControlFileError, match="not UTF-8"):
        load_control_file(bad)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(ControlFileError, match="larger than"):
        load_control_file(big)
    bomb = tmp_path / "bomb.yaml"  # YAML tags outside the safe set are refused
    bomb.write_text("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(ControlFileError, match="not valid YAML"):
        load_control_file(bomb)


def test_load_directory_and_duplicate_framework(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "ignored.txt").write_text("not a control file")
    sets = load_controls([tmp_path])
    assert [s.framework for s in sets] == ["test-fw"]
    (tmp_path / "b.yml").write_text(GOOD)
    with pytest.raises(ControlFileError, match="already defined") as ei:
        load_controls([tmp_path])
    assert ei.value.path.endswith("b.yml")


def test_parse_condition_forms() -> None:
    c = parse_condition({"not": "a.b is true"})
    assert c.kind == "not" and c.keys() == {"a.b"}
    assert parse_condition("a.b in [x, y]").value == ["x", "y"]
    assert parse_condition("a.b exists").op == "exists"
    assert parse_condition("a.b == 'text with spaces'").value == "text with spaces"
    for bad in ["a.b in x", {"all": []}, {"some": ["a.b exists"]}, {"all": ["a.b exists"], "any": []}, 42,
                "A.B exists"]:
        with pytest.raises(ControlFileError):
            parse_condition(bad)


def test_alias_bomb_is_cheap_and_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    with pytest.raises(ControlFileError, match="unknown top-level field"):
        parse_control_text("\n".join(lines) + "\nframework: x\n", "bomb.yaml")
    bomb = GOOD.replace("evidence: [logging.retention_days]", "evidence: &e [[a, b], [c]]", 1)
    with pytest.raises(ControlFileError, match="bad evidence key"):
        parse_control_text(bomb, "bomb.yaml")
