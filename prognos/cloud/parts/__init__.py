"""Part demand: the intermittent-demand forecaster with its baselines and backtest, and the
parts plan per service center (docs/forecast.md)."""
