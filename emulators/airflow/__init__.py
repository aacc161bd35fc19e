"""An Airflow 3 REST API replay server over payloads recorded from a real Airflow 3.3.2."""

from emulators.airflow.recording import Recording
from emulators.airflow.server import AirflowReplay

__all__ = ["AirflowReplay", "Recording"]
