"""Storage in InfluxDB.

- client: the v1 HTTP API, one request at a time (/write, /query).
"""
