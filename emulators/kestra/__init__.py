"""A Kestra API emulator: the subset of `/api/v1/{tenant}/…` Switchyard uses.

Re-exports only; see `server.py` for the server and `state.py` for the
deterministic execution model.
"""

from emulators.kestra.server import KestraEmulator
from emulators.kestra.state import Scenario

__all__ = ["KestraEmulator", "Scenario"]
