"""A read-only database role for people and dashboards.

The role can read every table and view InferWatch has now or adds later
(default privileges of the role that runs the migrations), and its sessions
start read-only, so even a function with side effects cannot write.
"""

from __future__ import annotations

from psycopg import sql
from sqlalchemy import Engine


def grant_readonly(engine: Engine, user: str, password: str | None = None) -> bool:
    """Creates ``user`` if needed (with ``password``) and grants it read access; True if it
    was created. Idempotent."""
    role = sql.Identifier(user)
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        assert conn is not None
        with conn.transaction():
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone()
            login = sql.SQL("LOGIN PASSWORD {}").format(password) if password else sql.SQL("LOGIN")
            if exists is None:
                conn.execute(sql.SQL("CREATE ROLE {} {}").format(role, login))
            elif password:
                conn.execute(sql.SQL("ALTER ROLE {} {}").format(role, login))
            database = sql.Identifier(conn.info.dbname)
            for statement in (
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "GRANT USAGE ON SCHEMA public TO {role}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}",
                "ALTER ROLE {role} IN DATABASE {db} SET default_transaction_read_only = on",
            ):
                conn.execute(sql.SQL(statement).format(db=database, role=role))
        return exists is None
    finally:
        raw.close()
