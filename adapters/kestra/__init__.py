"""Kestra source: poll executions (with task runs and attempts), discover flows."""

from adapters.kestra.adapter import KestraAdapter, create

__all__ = ["KestraAdapter", "create"]
