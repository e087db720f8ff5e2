"""How far a full_db restore has come, over all its phases: the estimate behind "time left".

A restore goes through phases of very different costs: reading the dump once
against its sha256, the schema (a few hundred quick statements), the data
(the bulk of the bytes), then the indexes and constraints, which build no
byte of their own yet take a good part of the time, since each one reads its
table again. A time-left figure per phase says nothing of the phases to come,
and one counted in index steps jumps about (a big table's index takes minutes,
a small one's a moment).

:class:`RestoreEstimate` weighs every phase in one unit, *byte-equivalents of
loading data*, fixed when the restore starts from what the dump's table of
contents and size say: checking reads a byte for a small fraction of what
loading it costs, a schema statement weighs as a small table's data, and the
index phase weighs a share of the data's size (PostgreSQL builds an index by
sorting its table, about as many bytes as were loaded) spread evenly over its
steps. The weights never change afterwards, and a phase that ends counts whole
(at what it actually did), so the fraction done never goes backwards; a
reader's rate over these units gives a time left that holds through the index
phase.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CHECK_WEIGHT", "INDEX_WEIGHT", "PHASES", "STEP_WEIGHT", "RestoreEstimate"]

#: The phases of a restore, in order.
PHASES: Final = ("checking the dump", "schema", "data", "indexes and constraints")
#: Byte-equivalents of one byte read and hashed while checking the dump.
CHECK_WEIGHT: Final = 0.1
#: Byte-equivalents of one schema statement, and the least an index step weighs.
STEP_WEIGHT: Final = 64 * 1024
#: The index phase's weight, as a share of the data's bytes.
INDEX_WEIGHT: Final = 0.5


class RestoreEstimate:
    """The work of a full_db restore done so far and in all, in byte-equivalents.

    ``dump_bytes`` is the dump's size, ``schema_steps`` and ``index_steps``
    the entries of its pre- and post-data sections.
    """

    def __init__(self, dump_bytes: int, schema_steps: int, index_steps: int) -> None:
        index_total = max(INDEX_WEIGHT * dump_bytes, STEP_WEIGHT * index_steps)
        self._weights = {
            "checking the dump": CHECK_WEIGHT * dump_bytes,
            "schema": float(STEP_WEIGHT * schema_steps),
            "data": float(dump_bytes),
            "indexes and constraints": index_total if index_steps else 0.0,
        }
        self._totals = {
            "checking the dump": dump_bytes,
            "schema": schema_steps,
            "data": dump_bytes,
            "indexes and constraints": index_steps,
        }
        self._done = dict.fromkeys(PHASES, 0)
        self._ended: set[str] = set()

    @property
    def total(self) -> int:
        """All the work, in byte-equivalents (fixed at the start)."""
        return max(1, round(sum(self._weights.values())))

    def weight(self, phase: str) -> float:
        """The share of ``phase`` in all the work, from 0 to 1."""
        return self._weights[phase] / self.total

    def advance(self, phase: str, done: int) -> None:
        """``phase`` has done ``done`` of its own units (bytes or steps) so far."""
        self._done[phase] = max(self._done[phase], done)

    def end(self, phase: str) -> None:
        """``phase`` is over: it counts whole, whatever it counted."""
        self._ended.add(phase)

    @property
    def done(self) -> int:
        """The work done so far, in byte-equivalents: never more than :attr:`total`."""
        work = 0.0
        for phase in PHASES:
            if phase in self._ended:
                work += self._weights[phase]
            elif self._totals[phase]:
                share = min(1.0, self._done[phase] / self._totals[phase])
                work += self._weights[phase] * share
        return min(self.total, round(work))

    @property
    def fraction(self) -> float:
        """The fraction of the restore done, from 0 to 1."""
        return self.done / self.total
