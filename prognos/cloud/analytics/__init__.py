"""Fleet analytics: pure functions from DataFrames to DataFrames (alerts, cohorts and campaigns,
the proactive service list, maintenance intervals, the parts plan's inputs), and the job that
reads their inputs from storage and writes the results back (docs/analytics.md)."""
