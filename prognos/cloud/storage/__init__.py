"""Storage in InfluxDB: what is stored, how a point is written, and how it gets there.

- measurement: what a declaration is (name, tags, fields and their types, timestamp unit);
- schema: every measurement the project writes, declared once (docs/storage.md);
- encode: points as line protocol, checked against their declaration;
- writer: batches, 413 splitting, retries with backoff or Retry-After;
- client: the v1 HTTP API, one request at a time (/write, /query).

Nothing is imported here, so that the pure modules load without the HTTP client.
"""
