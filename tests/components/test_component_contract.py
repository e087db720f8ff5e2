"""Every registered component keeps the promises of the component contract."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import psycopg
import pytest

from odeion_archive import ComponentPlan, Registry
from odeion_archive._schema import migrate
from odeion_archive.interfaces import BackupContext, PlanContext, RestoreContext
from odeion_archive.testing import check_component

COMPONENTS = sorted(Registry.default(entry_points=False).components().items())


@pytest.mark.parametrize(("name", "component"), COMPONENTS, ids=[n for n, _ in COMPONENTS])
def test_component_contract(
    name: str, component: Any, odeion_db: str, empty_db: str, tmp_path: Path
) -> None:
    if component.restore_scope == "transaction":
        with psycopg.connect(empty_db) as conn:  # a fresh install, ready for JSON restores
            migrate(conn)
    check_component(component, odeion_db, empty_db, tmp_path)


class _Forgetful:
    """A component whose restore adds a new row every time it runs."""

    name = "forgetful"
    payload_version = 1
    restore_scope: Literal["transaction", "database"] = "transaction"

    def backup(self, context: BackupContext) -> Mapping[str, Any]:
        context.add_member("note.txt", [b"hello"])
        return {}

    def plan(self, context: PlanContext) -> ComponentPlan:
        return ComponentPlan(steps=("add a note",))

    def restore(self, context: RestoreContext) -> ComponentPlan:
        context.connection.execute(
            "INSERT INTO system_settings (key, value) VALUES (%s, '1')", (uuid.uuid4().hex,)
        )
        return ComponentPlan()


def test_the_contract_catches_a_restore_that_is_not_idempotent(
    pg18: Any, odeion_db: str, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match="restoring twice"):
        check_component(_Forgetful(), odeion_db, odeion_db, tmp_path)


def test_the_contract_catches_a_bad_name(odeion_db: str, tmp_path: Path) -> None:
    broken = _Forgetful()
    broken.name = "Forgetful Notes"
    with pytest.raises(AssertionError, match="not a valid name"):
        check_component(broken, odeion_db, odeion_db, tmp_path)
