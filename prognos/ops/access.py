"""Database access on the stack: a client per role with that role's login, and the users and
grants a secure stack sets up (prognos.security lists the roles and their privileges)."""

from __future__ import annotations

from prognos.cloud.storage.client import AccessDeniedError, InfluxClient, quote_identifier, quote_string
from prognos.ops.identities import DATABASE_ROLES, INFLUX_ADMIN
from prognos.ops.state import StackInfo


def stack_influx(info: StackInfo, role: str, *, timeout_s: float = 10.0) -> InfluxClient:
    """A client of the stack's InfluxDB logged in as `role` (anonymous on an insecure stack)."""
    credentials = info.influx_credentials(role)
    if credentials is None:
        return InfluxClient(info.influx_url, timeout_s=timeout_s)
    return InfluxClient(
        info.influx_url, timeout_s=timeout_s, username=credentials.username, password=credentials.password
    )


def ensure_users(info: StackInfo) -> None:
    """The admin user and one user per database role, with the passwords in the stack's
    credentials. The first admin can be created without a login only while no user exists,
    which is the state of a database server started for the first time."""
    admin = info.influx_credentials(INFLUX_ADMIN)
    assert admin is not None, "only a secure stack has database users"
    client = stack_influx(info, INFLUX_ADMIN)
    try:
        client.query("SHOW USERS", database=None)
    except AccessDeniedError:  # no admin yet (or a lost password: the message says what to do)
        anonymous = InfluxClient(info.influx_url)
        try:
            anonymous.query(
                f"CREATE USER {quote_identifier(admin.username)} WITH PASSWORD "
                f"{quote_string(admin.password)} WITH ALL PRIVILEGES",
                database=None,
                method="POST",
            )
        except AccessDeniedError as exc:
            raise AccessDeniedError(
                f"cannot log in to InfluxDB as {admin.username!r} with the password in "
                f"{info.credentials_dir}: {exc}"
            ) from exc
        finally:
            anonymous.close()
    existing = {
        str(row["user"]) for series in client.query("SHOW USERS", database=None) for row in series.rows()
    }
    for role in DATABASE_ROLES:
        credentials = info.influx_credentials(role)
        assert credentials is not None
        name = quote_identifier(credentials.username)
        password = quote_string(credentials.password)
        if credentials.username in existing:
            text = f"SET PASSWORD FOR {name} = {password}"
        else:
            text = f"CREATE USER {name} WITH PASSWORD {password}"
        client.query(text, database=None, method="POST")
    client.close()


def prepare_database(info: StackInfo, database: str) -> None:
    """Create `database` with what the analytics job needs that only an admin may create, and
    grant each role its privilege on it. On an insecure stack: only create it."""
    from prognos.cloud.analytics.reading import ensure_rollup_policy

    client = stack_influx(info, INFLUX_ADMIN)
    try:
        client.create_database(database)
        ensure_rollup_policy(client, database)
        if not info.secure:
            return
        for role, privilege in DATABASE_ROLES.items():
            credentials = info.influx_credentials(role)
            assert credentials is not None
            user = quote_identifier(credentials.username)
            client.query(
                f"GRANT {privilege} ON {quote_identifier(database)} TO {user}",
                database=None,
                method="POST",
            )
    finally:
        client.close()
