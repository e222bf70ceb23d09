"""Every statement about a table Citus would distribute names its endpoint.

docs/scaling.md plans the step past one PostgreSQL: Citus, with hits, the ledgers,
forwarding and the senders' tables distributed by ``endpoint_id`` and co-located. A
statement that filters (or joins, or inserts) by ``endpoint_id`` is routed to one
shard there; one that does not asks every shard, and a modifying one locks them all.
This test reads the SQL in ``monitor/`` (string constants, f-strings with their
module-level parts filled in, and the hit list's built query) and fails naming any
statement that touches such a table more often than it names ``endpoint_id``, unless
it is in ``ALLOWED`` with the reason it may fan out.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from monitor.storage.hit_rows import COPY_COLUMNS
from monitor.storage.hits import HitFilter, encode_cursor, list_query

PACKAGE = Path(__file__).parents[2] / "monitor"
DISTRIBUTED = (
    "hits", "hits_default", "click_keys", "click_lifecycle", "forward_outbox",
    "forward_attempts", "endpoint_senders", "endpoint_param_shapes",
)  # fmt: skip
TABLE = "|".join(DISTRIBUTED)
# A use of a distributed table as a row source or a target.
READ_OR_WRITE = re.compile(rf"\b(?:FROM|JOIN|UPDATE)\s+(?:ONLY\s+)?(?:{TABLE})\b")
# An insert routes each row by its endpoint_id value, if it names the column.
INSERT = re.compile(rf"\bINSERT\s+INTO\s+(?:{TABLE})\b(?:\s+AS\s+\w+)?\s*\(([^)]*)\)", re.S)
# endpoint_id compared for equality: = $1, = ANY($1), = e.id, IN (...), USING (endpoint_id).
ENDPOINT_PREDICATE = re.compile(r"\bendpoint_id\s*(?:=|\bIN\b)|\bUSING\s*\(\s*endpoint_id\b")

# (module under monitor/, a piece of the statement): why it may ask every shard.
ALLOWED = {
    ("storage/hits.py", "SELECT endpoint_id, received_at FROM hits\nWHERE id = $1"): (
        "a hit named by its id alone (hit page, GET/DELETE /api/hits/{id}, forwards): the "
        "one fan-out, an index probe per shard pruned to one partition; what follows it "
        "is routed by the endpoint it returns"
    ),
    ("storage/hits.py", "SELECT endpoint_id, received_at FROM hits WHERE id = $1"): (
        "the same for ids that are not UUIDv7 (no time to prune by); made outside capture"
    ),
    ("forwarding/outbox.py", "SELECT DISTINCT endpoint_id FROM forward_outbox"): (
        "the forwarder's scan for endpoints with due rows, across endpoints by nature; "
        "docs/scaling.md: under Citus it becomes a read of every shard, then a claim per "
        "endpoint"
    ),
    ("storage/retention.py", "DELETE FROM hits_default WHERE received_at < $1"): (
        "hourly maintenance of the catch-all partition, by time across every endpoint"
    ),
}

# Statements assembled at run time from these pieces; a test below builds them.
BUILT = {
    ("storage/hits.py", "FROM hits WHERE {' AND '.join(clauses)}"): "list_query",
}


@dataclass(frozen=True)
class Statement:
    module: str
    line: int
    sql: str


def render(node: ast.expr, namespace: dict[str, object]) -> str | None:
    """The text of a string constant or an f-string; a part the module's namespace
    does not hold as a string stays as ``{expression}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if not isinstance(node, ast.JoinedStr):
        return None
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
        elif isinstance(value, ast.FormattedValue):
            known = namespace.get(value.value.id) if isinstance(value.value, ast.Name) else None
            parts.append(known if isinstance(known, str) else "{" + ast.unparse(value.value) + "}")
    return "".join(parts)


def statements_in(path: Path) -> list[Statement]:
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    namespace = vars(importlib.import_module(name))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    inner = {
        id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values
    }
    # A module-level constant is read as the module holds it, every part filled in.
    constants = {
        id(node.value): node.targets[0].id
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in docstrings or id(node) in inner or not isinstance(node, ast.expr):
            continue
        held = namespace.get(constants.get(id(node), ""))
        text = held if isinstance(held, str) else render(node, namespace)
        if text and (READ_OR_WRITE.search(text) or INSERT.search(text)):
            found.append(Statement(str(path.relative_to(PACKAGE)), node.lineno, text))
    return found


def unrouted(sql: str) -> bool:
    """Whether ``sql`` uses a distributed table more often than it names its endpoint."""
    inserts = INSERT.findall(sql)
    if any("endpoint_id" not in columns for columns in inserts):
        return True
    return len(READ_OR_WRITE.findall(sql)) > len(ENDPOINT_PREDICATE.findall(sql))


def allowed(statement: Statement) -> bool:
    return any(
        module == statement.module and piece in statement.sql
        for module, piece in [*ALLOWED, *BUILT]
    )


def all_statements() -> list[Statement]:
    # __main__ runs the CLI when imported, and holds no SQL.
    paths = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")
    return [s for path in paths for s in statements_in(path)]


def test_every_statement_on_a_distributed_table_names_its_endpoint() -> None:
    found = all_statements()
    # The reader must see the queries at all: the writer's ledger, the hit list and
    # its neighbours, forwarding and retention are all in there.
    assert len(found) > 40
    offenders = [
        f"{s.module}:{s.line}: {' '.join(s.sql.split())[:160]}"
        for s in found
        if unrouted(s.sql) and not allowed(s)
    ]
    assert offenders == [], "statements on distributed tables without endpoint_id"


def test_every_allowed_fan_out_is_still_there_and_still_fans_out() -> None:
    found = all_statements()
    for module, piece in ALLOWED:
        matches = [s for s in found if s.module == module and piece in s.sql]
        assert len(matches) == 1, (module, piece)
        assert unrouted(matches[0].sql), f"{module}: no longer a fan-out; drop it from ALLOWED"


def test_the_hit_list_with_every_filter_names_its_endpoint() -> None:
    """The list's SQL is built per request, so it is checked as built."""
    flt = HitFilter(
        flags=("duplicate_click_id",), flagged=True, click_id="c1",
        since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 2, 1, tzinfo=UTC),
        method="GET", search="x", after=(datetime(2026, 1, 1, tzinfo=UTC), UUID(int=1)),
        forward_state="failed", test=False,
    )  # fmt: skip
    cursor = encode_cursor(datetime(2026, 1, 2, tzinfo=UTC), UUID(int=2))
    for state in ("failed", "none"):
        sql, args = list_query(7, replace(flt, forward_state=state), cursor, 50)
        assert not unrouted(sql), sql
        assert args[0] == 7


def test_the_copy_into_hits_carries_the_endpoint() -> None:
    """The writer's COPY names its columns in Python, not in a statement."""
    assert "endpoint_id" in COPY_COLUMNS


def test_the_reader_catches_a_statement_without_the_endpoint() -> None:
    assert unrouted("SELECT * FROM hits WHERE id = $1")
    assert unrouted("DELETE FROM click_keys WHERE click_id = $1")
    assert unrouted("UPDATE forward_outbox SET state = $1 WHERE hit_id = $2")
    assert unrouted("INSERT INTO forward_attempts (hit_id, kind) VALUES ($1, $2)")
    assert unrouted(
        "SELECT 1 FROM hits h JOIN click_keys k ON k.first_hit_id = h.id WHERE h.endpoint_id = $1"
    )
    assert not unrouted("SELECT * FROM hits WHERE endpoint_id = $1 AND id = $2")
    assert not unrouted("SELECT * FROM hits WHERE endpoint_id = ANY($1::bigint[])")
    assert not unrouted("INSERT INTO click_keys (endpoint_id, click_id) VALUES ($1, $2)")
