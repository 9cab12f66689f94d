"""Prognos: predictive after-sales service for vehicle fleets."""

__version__ = "0.1.0"
