"""The service desk: customers with risk tags, complaints with SLA clocks and escalation, and a
signed, append-only entitlement ledger, kept in a relational store (SQLite by default,
PostgreSQL in deployment) through SQLAlchemy with Alembic migrations (docs/desk.md)."""
