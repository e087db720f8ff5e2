"""The full_db restore's estimate over all its phases (the work behind "time left")."""

from __future__ import annotations

import pytest

from odeion_archive.components.full_db._estimate import PHASES, RestoreEstimate


def _walk(
    estimate: RestoreEstimate, dump: int, schema: int, indexes: int, *, short: int = 0
) -> list[float]:
    """The fractions done while a restore goes through every phase as the dump declares."""
    seen = [estimate.fraction]
    for done in range(0, dump + 1, max(1, dump // 7)):
        estimate.advance("checking the dump", done)
        seen.append(estimate.fraction)
    estimate.end("checking the dump")
    seen.append(estimate.fraction)
    for step in range(1, schema + 1):
        estimate.advance("schema", step)
        seen.append(estimate.fraction)
    estimate.end("schema")
    for done in range(0, dump + 1, max(1, dump // 13)):
        estimate.advance("data", done)
        seen.append(estimate.fraction)
    estimate.end("data")
    seen.append(estimate.fraction)
    for step in range(1, indexes - short + 1):
        estimate.advance("indexes and constraints", step)
        seen.append(estimate.fraction)
    estimate.end("indexes and constraints")
    seen.append(estimate.fraction)
    return seen


@pytest.mark.parametrize(
    ("dump", "schema", "indexes"),
    [(2_000_000_000, 300, 40), (10_000, 5_000, 900), (50_000_000, 1, 1), (1_000, 0, 0)],
)
def test_the_fraction_done_never_goes_backwards_and_ends_whole(
    dump: int, schema: int, indexes: int
) -> None:
    estimate = RestoreEstimate(dump, schema, indexes)
    total = estimate.total
    seen = _walk(estimate, dump, schema, indexes)
    assert seen == sorted(seen)
    assert seen[0] == 0
    assert seen[-1] == 1
    assert estimate.total == total  # fixed at the start
    assert sum(estimate.weight(p) for p in PHASES) == pytest.approx(1, abs=1e-6)


def test_a_phase_that_does_less_than_declared_still_ends_whole() -> None:
    estimate = RestoreEstimate(1_000_000, 10, 20)
    seen = _walk(estimate, 1_000_000, 10, 20, short=15)
    assert seen == sorted(seen)
    assert seen[-1] == 1


def test_more_than_declared_is_never_counted_past_the_phase() -> None:
    estimate = RestoreEstimate(1_000_000, 10, 20)
    estimate.advance("schema", 500)
    assert estimate.fraction == pytest.approx(estimate.weight("schema"), abs=1e-6)
    estimate.advance("data", 10**12)
    assert estimate.done <= estimate.total


def test_the_index_phase_weighs_in_proportion_to_the_data() -> None:
    """The indexes build no bytes of their own but are not free: the data does not end the bar."""
    big = RestoreEstimate(2_000_000_000, 300, 40)
    assert 0.2 < big.weight("indexes and constraints") < 0.5
    assert big.weight("data") > big.weight("indexes and constraints")
    # Many indexes on little data: each index step still weighs something.
    many = RestoreEstimate(10_000, 50, 5_000)
    assert many.weight("indexes and constraints") > 0.5
    # Without indexes, nothing waits after the data.
    assert RestoreEstimate(1_000_000, 10, 0).weight("indexes and constraints") == 0


def test_each_index_step_moves_the_fraction_by_an_even_share() -> None:
    estimate = RestoreEstimate(100_000_000, 10, 4)
    for phase in PHASES[:3]:
        estimate.end(phase)
    before = estimate.fraction
    steps = []
    for step in range(1, 5):
        estimate.advance("indexes and constraints", step)
        steps.append(estimate.fraction - before)
        before = estimate.fraction
    assert all(step > 0 for step in steps)
    assert max(steps) - min(steps) < 1e-6 + 2 / estimate.total
    assert estimate.fraction == 1
