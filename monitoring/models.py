"""Monitoring tables (event stream, reference data, drift reports, alerts) arrive with issue #4."""
