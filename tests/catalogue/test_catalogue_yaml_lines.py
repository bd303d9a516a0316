"""The line-aware YAML reader: same data as yaml.safe_load, plus lines."""

from __future__ import annotations

import pytest
import yaml

from avatar_batch.catalogue.yaml_lines import YamlShapeError, parse_yaml

TEXT = """\
version: 1
personas:
  doc:
    voices: {en: en-us}
entries:
  - id: a
    answer: "x"

  - id: b
"""


def test_data_matches_safe_load():
    assert parse_yaml(TEXT).data == yaml.safe_load(TEXT)


def test_lines_of_keys_and_items():
    lines = parse_yaml(TEXT).lines
    assert lines[("version",)] == 1
    assert lines[("personas", "doc")] == 3
    assert lines[("personas", "doc", "voices", "en")] == 4
    assert lines[("entries", 0)] == 6
    assert lines[("entries", 0, "answer")] == 7
    assert lines[("entries", 1)] == 9
    assert lines[("entries", 1, "id")] == 9


def test_duplicate_keys_are_reported():
    parsed = parse_yaml("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    found = {(d.path, d.first_line, d.second_line) for d in parsed.duplicates}
    assert found == {(("a",), 1, 5), (("b", "c"), 3, 4)}
    assert parsed.data == {"a": 3, "b": {"c": 2}}  # what safe_load would keep


def test_python_tags_are_refused():
    with pytest.raises(yaml.YAMLError):
        parse_yaml("x: !!python/object/apply:os.system ['true']\n")


def test_syntax_error_carries_a_line():
    with pytest.raises(yaml.MarkedYAMLError) as caught:
        parse_yaml("a: 1\nb: [1, 2\nc: 3\n")
    assert caught.value.problem_mark is not None


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: *a}\n"])
def test_alias_cycles_are_refused(text):
    with pytest.raises(YamlShapeError, match="cycle"):
        parse_yaml(text)


def test_deep_nesting_is_refused():
    with pytest.raises(YamlShapeError, match="deeper"):
        parse_yaml("a: " + "[" * 80 + "]" * 80 + "\n")


def test_alias_expansion_is_bounded():
    rows = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    rows += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    with pytest.raises(YamlShapeError, match="aliases"):
        parse_yaml("\n".join(rows))


def test_shared_alias_without_a_cycle_is_fine():
    parsed = parse_yaml("a: &x [1]\nb: [*x, *x]\n")
    assert parsed.data == {"a": [1], "b": [[1], [1]]}
