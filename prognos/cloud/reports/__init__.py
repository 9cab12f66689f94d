"""Diagnosis reports: one per alert a record raises or escalates, built event by event beside
ingest (docs/reports.md).

alerting (pure): which alerts a record raises and whether each is new or more urgent;
report (pure): the report's content and its JSON form; render (pure): HTML and plain text;
sources: what the report reads from InfluxDB; notify: webhook and e-mail; worker: the MQTT
shared subscription that ties them together, storing through a ReportStore (the service desk's
implementation is prognos.desk.reports).
"""
