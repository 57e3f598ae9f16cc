"""pdd_edge/errors.py: the one error a user sees, and how its messages are written."""

from __future__ import annotations


def test_lists_cut_short_in_messages_end_with_an_ellipsis_and_the_count():
    from pdd_edge.errors import shortlist

    assert shortlist(["a", "b"]) == "'a', 'b'"
    assert shortlist(["a", "b", "c", "d", "e"]) == "'a', 'b', 'c', … (5 in all)"
    assert shortlist([]) == "none"
