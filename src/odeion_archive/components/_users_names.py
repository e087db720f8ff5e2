"""New names for the rename strategy: usernames, e-mails and invite codes that are free."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
from psycopg import sql

from odeion_archive.components._jsonrows import Cursor, create_temp, drop_temp
from odeion_archive.components._users_tables import _MAX_CANDIDATES
from odeion_archive.errors import RestoreFailedError

__all__ = ["Probe", "resolve_names", "suffixed", "suffixed_email"]


@attrs.frozen
class Probe:
    """What the database says about one candidate name.

    ``norm`` is the candidate as uniqueness compares it (``lower()`` for
    usernames and e-mails); ``existing`` whether a row of the target holds it,
    ``identical`` whether that row is this incoming row's earlier copy
    (``ref`` is then its id), ``incoming`` whether another incoming row is named so.
    """

    norm: str
    existing: bool
    identical: bool
    incoming: bool
    ref: int | None = None


def resolve_names(
    items: Sequence[tuple[int, str]],
    candidate: Callable[[str, int], str],
    probe: Callable[[list[int], list[str]], list[Probe]],
) -> tuple[dict[int, str], dict[int, int | None]]:
    """Choose for each ``(ord, name)`` the first free candidate ``candidate(name, k)``, k=1...

    A candidate is free when neither the target, nor any incoming row, nor a
    candidate chosen before holds it. A candidate held by an identical row is
    an earlier restore's copy: the row is then skipped. Returns
    ``({ord: new name}, {ord: id of the copy})``. Rows are served in ``ord``
    order, so the outcome only depends on the archive and the database.
    """
    chosen: dict[int, str] = {}
    copies: dict[int, int | None] = {}
    assigned: set[str] = set()
    pending = sorted(items)
    k = 1
    while pending:
        if k > _MAX_CANDIDATES:
            raise RestoreFailedError(
                f"no free name found for {pending[0][1]!r} after {_MAX_CANDIDATES} tries; "
                "remove old restored copies or choose another conflict strategy"
            )
        names = [candidate(name, k) for _, name in pending]
        answers = probe([number for number, _ in pending], names)
        later: list[tuple[int, str]] = []
        for (number, original), name, answer in zip(pending, names, answers, strict=True):
            if answer.existing and answer.identical:
                copies[number] = answer.ref
            elif answer.existing or answer.incoming or answer.norm in assigned:
                later.append((number, original))
            else:
                assigned.add(answer.norm)
                chosen[number] = name
        pending = later
        k += 1
    return chosen, copies


def suffixed(name: str, k: int) -> str:
    """``name-restored``, ``name-restored-2``, ...: the k-th candidate for a name or code."""
    return f"{name}-restored" if k == 1 else f"{name}-restored-{k}"


def suffixed_email(email: str, k: int) -> str:
    """``bob+restored@host``, ``bob+restored-2@host``...: the k-th candidate for an e-mail."""
    tag = "+restored" if k == 1 else f"+restored-{k}"
    local, at, domain = email.rpartition("@")
    return f"{local}{tag}@{domain}" if at else f"{email}{tag}"


def _rename_users(cur: Cursor) -> None:
    """Choose new usernames and e-mails for the rows the rename strategy must add."""
    cur.execute(
        "SELECT ord, username, email, match_id IS NOT NULL, email_holder IS NOT NULL "
        "FROM _oa_users WHERE decision IS NULL ORDER BY ord"
    )
    pending = cur.fetchall()
    if not pending:
        return

    def probe_name(ords: list[int], names: list[str]) -> list[Probe]:
        cur.execute(
            "SELECT lower(c.name), u.id, "
            "coalesce(u.password_hash = t.password_hash AND u.created_at = t.created_at, false), "
            "EXISTS (SELECT FROM _oa_users x WHERE x.lname = lower(c.name)) "
            "FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS c(ord, name, n) "
            "JOIN _oa_users t ON t.ord = c.ord "
            "LEFT JOIN users u ON lower(u.username) = lower(c.name) ORDER BY c.n",
            (ords, names),
        )
        return [
            Probe(norm=norm, existing=ref is not None, identical=same, incoming=incoming, ref=ref)
            for norm, ref, same, incoming in cur.fetchall()
        ]

    def probe_email(_ords: list[int], emails: list[str]) -> list[Probe]:
        cur.execute(
            "SELECT lower(c.email), "
            "EXISTS (SELECT FROM users u WHERE u.email IS NOT NULL "
            "AND lower(u.email) = lower(c.email)), "
            "EXISTS (SELECT FROM _oa_users x WHERE x.lemail = lower(c.email)) "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS c(email, n) ORDER BY c.n",
            (emails,),
        )
        return [
            Probe(norm=norm, existing=existing, identical=False, incoming=incoming)
            for norm, existing, incoming in cur.fetchall()
        ]

    names, copies = resolve_names(
        [(number, username) for number, username, _, matched, _ in pending if matched],
        suffixed,
        probe_name,
    )
    emails, _ = resolve_names(
        [
            (number, email)
            for number, _, email, _, held in pending
            if held and email is not None and number not in copies
        ],
        suffixed_email,
        probe_email,
    )
    create_temp(
        cur,
        "_oa_decided",
        columns=sql.SQL(
            "ord bigint, decision text, final_name text, final_email text, target_id bigint"
        ),
    )
    with cur.copy(
        "COPY _oa_decided (ord, decision, final_name, final_email, target_id) FROM STDIN"
    ) as copy:
        for number, username, email, _, _ in pending:
            if number in copies:
                copy.write_row((number, "skip", username, email, copies[number]))
            else:
                copy.write_row(
                    (
                        number,
                        "rename",
                        names.get(number, username),
                        emails.get(number, email),
                        None,
                    )
                )
    cur.execute(
        "UPDATE _oa_users t SET decision = d.decision, final_username = d.final_name, "
        "final_email = d.final_email, target_id = d.target_id "
        "FROM _oa_decided d WHERE d.ord = t.ord"
    )
    drop_temp(cur, "_oa_decided")
