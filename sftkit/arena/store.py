"""The arena's SQLite file: answers generated per prompt and model, battles shown, votes cast.

One file (``arena.sqlite`` in the arena directory) in WAL mode, so the page reads while votes are
written. ``PRAGMA user_version`` holds the schema version: a newer file is refused with a message,
never half-read. ``UNIQUE(battle, voter)`` makes "one vote per voter per battle" a property of the
database, not of the request handler: a second vote is an :class:`AlreadyVoted`, and concurrent
writers (``busy_timeout``) never lose or duplicate a row.

Choices: ``a`` / ``b`` (that answer is better), ``tie`` (both good), ``bad`` (both bad).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import SftkitError

SCHEMA_VERSION = 1
CHOICES = ("a", "b", "tie", "bad")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    prompt_set TEXT NOT NULL,
    prompt TEXT NOT NULL,
    model TEXT NOT NULL,
    answer TEXT NOT NULL,
    settings TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (prompt, model, settings)
);
CREATE TABLE IF NOT EXISTS battles (
    id TEXT PRIMARY KEY,
    prompt_set TEXT NOT NULL,
    prompt TEXT NOT NULL,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    answer_a TEXT NOT NULL,
    answer_b TEXT NOT NULL,
    settings TEXT NOT NULL,
    created REAL NOT NULL,
    shown_to TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS battles_shown_to ON battles(shown_to);
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY,
    battle TEXT NOT NULL REFERENCES battles(id),
    voter TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'bad')),
    better TEXT,
    created REAL NOT NULL,
    UNIQUE (battle, voter)
);
CREATE INDEX IF NOT EXISTS votes_battle ON votes(battle);
"""


class AlreadyVoted(Exception):
    """This voter already voted on this battle."""


@dataclass(frozen=True)
class Battle:
    id: str
    prompt_set: str
    prompt: str
    model_a: str
    model_b: str
    answer_a: str
    answer_b: str
    settings: dict
    created: float


@dataclass(frozen=True)
class Vote:
    """A vote joined with its battle (what export and ratings read)."""

    battle: Battle
    voter: str
    choice: str
    better: str | None
    created: float


def db_path(location) -> Path:
    """The database file of an arena directory (or the file itself)."""
    from . import DB_NAME

    p = Path(location)
    return p if p.suffix in (".sqlite", ".db", ".sqlite3") else p / DB_NAME


class Store:
    """Thread-safe access to one arena database (one connection per thread)."""

    def __init__(self, path, *, create: bool = True):
        self.path = db_path(path)
        if not self.path.exists() and not create:
            raise SftkitError(f"no arena database at {self.path}",
                              hint="pass the directory `sftkit arena` wrote to (its --dir), or the .sqlite file")
        self._local = threading.local()
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SftkitError(f"{self.path} has arena schema version {version}; this sftkit reads up to "
                              f"{SCHEMA_VERSION}", hint="upgrade sftkit")
        if version < SCHEMA_VERSION:
            if not create:
                has = conn.execute("SELECT name FROM sqlite_master WHERE name='votes'").fetchone()
                if not has:
                    raise SftkitError(f"{self.path} is not an arena database",
                                      hint="pass the arena directory or its arena.sqlite")
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA busy_timeout = 30000")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.DatabaseError as err:
                raise SftkitError(f"{self.path} is not a readable SQLite database: {err}",
                                  hint="pass the arena directory or its arena.sqlite") from err
            self._local.conn = conn
        return conn

    # ------------------------------------------------------------------ answers
    def answer(self, prompt: str, model: str, settings: dict) -> str | None:
        row = self._conn().execute("SELECT answer FROM answers WHERE prompt=? AND model=? AND settings=?",
                                   (prompt, model, _settings(settings))).fetchone()
        return row[0] if row else None

    def add_answer(self, prompt_set: str, prompt: str, model: str, answer: str, settings: dict) -> None:
        self._conn().execute("INSERT OR IGNORE INTO answers (prompt_set, prompt, model, answer, settings, created) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (prompt_set, prompt, model, answer, _settings(settings), time.time()))

    def ready_prompts(self, models: list[str], settings: dict) -> list[tuple[str, str]]:
        """(prompt_set, prompt) of listed prompts with an answer from at least two of ``models`` (answers
        are kept per prompt, model and settings, so a model's answers from an earlier arena on the
        same prompts count; the set is the one the prompt was first listed in)."""
        marks = ",".join("?" * len(models))
        rows = self._conn().execute(
            f"SELECT MIN(prompt_set), prompt FROM answers WHERE settings=? AND model IN ({marks}) "
            f"AND prompt_set != 'typed' GROUP BY prompt HAVING COUNT(DISTINCT model) >= 2 ORDER BY MIN(id)",
            (_settings(settings), *models)).fetchall()
        return [(r[0], r[1]) for r in rows]

    # ------------------------------------------------------------------ battles and votes
    def add_battle(self, prompt_set: str, prompt: str, model_a: str, model_b: str, answer_a: str, answer_b: str,
                   settings: dict, shown_to: str = "") -> Battle:
        battle = Battle(secrets.token_urlsafe(12), prompt_set, prompt, model_a, model_b, answer_a, answer_b,
                        dict(settings), time.time())
        self._conn().execute("INSERT INTO battles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (battle.id, prompt_set, prompt, model_a, model_b, answer_a, answer_b,
                              _settings(settings), battle.created, shown_to))
        return battle

    def open_battle(self, voter: str) -> Battle | None:
        """The latest battle drawn for ``voter`` that they have not voted on yet (one open battle each)."""
        row = self._conn().execute(
            "SELECT * FROM battles b WHERE shown_to=? AND NOT EXISTS "
            "(SELECT 1 FROM votes v WHERE v.battle = b.id AND v.voter = ?) ORDER BY created DESC LIMIT 1",
            (voter, voter)).fetchone()
        return _battle(row) if row else None

    def battle(self, battle_id: str) -> Battle | None:
        row = self._conn().execute("SELECT * FROM battles WHERE id=?", (battle_id,)).fetchone()
        return _battle(row) if row else None

    def add_vote(self, battle_id: str, voter: str, choice: str, better: str | None = None) -> None:
        """Record a vote; raises AlreadyVoted for a second vote of ``voter`` on ``battle_id``."""
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}")
        try:
            self._conn().execute("INSERT INTO votes (battle, voter, choice, better, created) VALUES (?, ?, ?, ?, ?)",
                                 (battle_id, voter, choice, better or None, time.time()))
        except sqlite3.IntegrityError as err:
            if "UNIQUE" in str(err):
                raise AlreadyVoted(battle_id) from err
            raise

    def vote_of(self, battle_id: str, voter: str) -> str | None:
        row = self._conn().execute("SELECT choice FROM votes WHERE battle=? AND voter=?",
                                   (battle_id, voter)).fetchone()
        return row[0] if row else None

    def votes(self) -> list[Vote]:
        """Every vote with its battle, oldest first."""
        rows = self._conn().execute(
            "SELECT b.id, b.prompt_set, b.prompt, b.model_a, b.model_b, b.answer_a, b.answer_b, b.settings, "
            "b.created, v.voter, v.choice, v.better, v.created FROM votes v JOIN battles b ON b.id = v.battle "
            "ORDER BY v.id").fetchall()
        return [Vote(_battle(r[:9]), r[9], r[10], r[11], r[12]) for r in rows]

    def count(self, table: str) -> int:
        if table not in ("answers", "battles", "votes"):
            raise ValueError(table)
        return self._conn().execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _settings(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def _battle(row) -> Battle:
    return Battle(row[0], row[1], row[2], row[3], row[4], row[5], row[6], json.loads(row[7]), row[8])
