"""Cloud side: ingest into InfluxDB, analytics, forecasts, dealer data."""
