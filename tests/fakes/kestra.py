"""The Kestra API emulator for tests (it lives in `emulators/` for the demo too)."""

from emulators.kestra import KestraEmulator, Scenario

__all__ = ["KestraEmulator", "Scenario"]
