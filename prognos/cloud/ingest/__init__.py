"""Ingest: records from MQTT into storage, acknowledged only once stored (docs/ingest.md)."""
