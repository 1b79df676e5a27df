"""The Postgres store: where the database is, its schema, and how to talk to it."""
