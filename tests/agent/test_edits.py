"""SEARCH/REPLACE application: exact, then whitespace-tolerant, else a typed miss with feedback."""

from __future__ import annotations

from specfleet.agent.edits import EditMiss, Replaced, apply_search_replace

CODE = "def f(x):\n    if x:\n        return 1\n    return 0\n"


def test_an_exact_unique_match_is_replaced() -> None:
    """The exact text, present once, is replaced and nothing else moves."""
    result = apply_search_replace(CODE, "        return 1\n", "        return 2\n")
    assert isinstance(result, Replaced) and not result.tolerant
    assert result.text == CODE.replace("return 1", "return 2")


def test_indentation_differences_are_tolerated_and_the_replacement_reindented() -> None:
    """A SEARCH copied without its indentation still matches; the REPLACE is indented to fit."""
    result = apply_search_replace(CODE, "if x:\n    return 1\n", "if x:\n    return 2\n")
    assert isinstance(result, Replaced) and result.tolerant
    assert result.text == "def f(x):\n    if x:\n        return 2\n    return 0\n"


def test_trailing_whitespace_and_blank_edges_are_tolerated() -> None:
    """Trailing spaces and surrounding blank lines in SEARCH do not stop a match."""
    result = apply_search_replace(CODE, "\n    return 0   \n\n", "    return -1\n")
    assert isinstance(result, Replaced)
    assert result.text.endswith("    return -1\n")


def test_an_ambiguous_search_is_refused() -> None:
    """Text occurring twice is refused: the model must add context."""
    result = apply_search_replace("a = 1\na = 1\n", "a = 1\n", "a = 2\n")
    assert isinstance(result, EditMiss) and result.kind == "ambiguous"
    assert "2 times" in result.message


def test_a_miss_names_the_nearest_passage() -> None:
    """A hallucinated SEARCH gets back the closest real lines, their line number and similarity."""
    result = apply_search_replace(CODE, "    if y:\n        return 1\n", "")
    assert isinstance(result, EditMiss) and result.kind == "not-found"
    assert result.nearest == "    if x:\n        return 1" and result.nearest_line == 2
    assert "line 2" in result.render() and "if x:" in result.render()


def test_an_empty_search_is_refused() -> None:
    """An empty SEARCH would match everywhere; the model is told to write the file instead."""
    result = apply_search_replace(CODE, "  \n", "x")
    assert isinstance(result, EditMiss) and result.kind == "empty-search"
