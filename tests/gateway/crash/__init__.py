"""Helpers for the crash test: a writer process that the test kills with SIGKILL."""
