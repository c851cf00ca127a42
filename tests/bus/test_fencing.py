"""The gateway's fencing rule: a deposed lease holder's commands are refused."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lightson.bus.fencing import Fences


def test_a_lower_fence_is_refused_after_a_higher_one() -> None:
    fences = Fences()
    assert fences.admit("home-03", 4)
    assert fences.admit("home-03", 4)  # the same holder, again
    assert fences.admit("home-03", 9)  # a successor took the lease
    assert not fences.admit("home-03", 4)  # the old holder is fenced off
    assert fences.admit("home-04", 1)  # each site on its own
    assert fences.highest("home-03") == 9


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=40))
def test_a_fence_is_admitted_exactly_when_no_higher_one_came_before(sequence: list[int]) -> None:
    fences = Fences()
    for i, fence in enumerate(sequence):
        assert fences.admit("s", fence) == (fence >= max(sequence[:i], default=0))
