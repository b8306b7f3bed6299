"""Who is logged in: reviewers and login sessions, kept server-side in the ratings database.

    ids = Identities(store)
    session = ids.open_session("reviewer", ids.claim("Alice").name)
    ids.who(session)   # -> Login(role="reviewer", name="Alice")

The browser holds only a random session id. Cookies do not isolate ports, so any page on
127.0.0.1 can set a cookie here: a name kept in a cookie could be replaced by another local
page (a tossed `sftflow_reviewer=Mallory`). A session id cannot be forged that way (it is 32
random bytes the page does not know), and the name a rating is filed under is read from this
table. Names are case-insensitive and unique: "alice" after "Alice" is the same reviewer,
and the login page says so before anyone continues under a name already in use.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sftflow.review.store import ReviewStore


@dataclass(frozen=True)
class Login:
    role: str  # "reviewer" or "admin"
    name: str | None  # the reviewer's name as first typed; None for the admin


@dataclass(frozen=True)
class Reviewer:
    name: str
    number: int  # order of first login: which batch they get
    submitted: bool  # the batch is submitted: ratings are final


def name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


class Identities:
    def __init__(self, store: ReviewStore):
        self.store = store

    def find(self, name: str) -> Reviewer | None:
        with self.store.connect() as db:
            row = db.execute("SELECT * FROM reviewers WHERE key = ?", (name_key(name),)).fetchone()
        return Reviewer(row["name"], row["number"], row["submitted_at"] is not None) if row else None

    def claim(self, name: str) -> Reviewer:
        """The reviewer of this name, registered now if new (the next batch number)."""
        with self.store.connect() as db:
            db.execute("INSERT OR IGNORE INTO reviewers (key, name, number) "
                       "VALUES (?, ?, (SELECT COALESCE(MAX(number) + 1, 0) FROM reviewers))",
                       (name_key(name), " ".join(name.split())))
        found = self.find(name)
        assert found is not None
        return found

    def all(self) -> list[Reviewer]:
        with self.store.connect() as db:
            rows = db.execute("SELECT * FROM reviewers ORDER BY number").fetchall()
        return [Reviewer(r["name"], r["number"], r["submitted_at"] is not None) for r in rows]

    def submit(self, name: str) -> None:
        with self.store.connect() as db:
            db.execute("UPDATE reviewers SET submitted_at = ? WHERE key = ? AND submitted_at IS NULL",
                       (time.strftime("%Y-%m-%dT%H:%M:%S%z"), name_key(name)))

    def open_session(self, role: str, name: str | None = None) -> str:
        session = secrets.token_urlsafe(32)
        with self.store.connect() as db:
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                       (session, role, name, time.strftime("%Y-%m-%dT%H:%M:%S%z")))
        return session

    def who(self, session: str) -> Login | None:
        if not session or len(session) > 100:
            return None
        with self.store.connect() as db:
            row = db.execute("SELECT role, reviewer FROM sessions WHERE id = ?", (session,)).fetchone()
        return Login(row["role"], row["reviewer"]) if row else None

    def close_session(self, session: str) -> None:
        with self.store.connect() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (session,))
