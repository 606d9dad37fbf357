"""Metrics and benchmark runners behind `evocdss eval`."""
