"""Every table's row count: taken in the backup's snapshot, checked again by a drill.

The counts are taken on a second connection that imports the backup's exported
snapshot, in a thread that runs while pg_dump streams the dump: they see exactly
the rows the dump holds, and cost the backup little more than the time pg_dump
takes anyway (both read the tables; the server runs them in parallel).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import sql

from odeion_archive._rowcounts import count_rows

__all__ = ["counted_in_snapshot"]


class _Counter(threading.Thread):
    """Counts the rows of every table in an exported snapshot, on a connection of its own."""

    def __init__(self, conninfo: str, snapshot: str) -> None:
        super().__init__(name="full_db-row-counts", daemon=True)
        self._conninfo = conninfo
        self._snapshot = snapshot
        self.connection: psycopg.Connection[Any] | None = None
        self.counts: dict[str, int] | None = None
        self.error: BaseException | None = None
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self._conninfo, autocommit=False) as connection:
                self.connection = connection
                self.connected.set()
                connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
                connection.read_only = True
                connection.execute(
                    sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self._snapshot))
                )
                self.counts = count_rows(connection)
                connection.rollback()
        except BaseException as exc:  # handed to the backup's thread, which raises it
            self.error = exc
        finally:
            self.connected.set()


@contextmanager
def counted_in_snapshot(conninfo: str, snapshot: str) -> Iterator[dict[str, int]]:
    """Count every table's rows in ``snapshot`` while the block runs.

    The dictionary yielded is filled when the block ends without an error. If
    the block fails, the count is cancelled. The snapshot must stay exported
    (its transaction open) until the block ends.
    """
    counter = _Counter(conninfo, snapshot)
    counter.start()
    result: dict[str, int] = {}
    try:
        yield result
    except BaseException:
        counter.connected.wait()
        if counter.connection is not None:
            with suppress(psycopg.Error, OSError):
                counter.connection.cancel_safe(timeout=5)
        counter.join()
        raise
    counter.join()
    if counter.error is not None:
        raise counter.error
    assert counter.counts is not None
    result.update(counter.counts)
