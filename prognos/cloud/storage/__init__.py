"""Storage in InfluxDB: what is stored, how a point is written, and the HTTP client.

- measurement: what a declaration is (name, tags, fields and their types, timestamp unit);
- schema: every measurement the project writes, declared once;
- encode: points as line protocol, checked against their declaration;
- client: the v1 HTTP API, one request at a time (/write, /query).

Nothing is imported here, so that the pure modules load without the HTTP client.
"""
