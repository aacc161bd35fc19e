"""AWS Lambda adapter: functions and their schedules, invocations from CloudWatch Logs."""

from __future__ import annotations

from adapters.aws_lambda.adapter import LambdaAdapter
from gateway.contract import SourceConfig

__all__ = ["LambdaAdapter", "create"]


def create(config: SourceConfig) -> LambdaAdapter:
    return LambdaAdapter(config)
