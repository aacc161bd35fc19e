"""The state map: every system's native states onto the one `State` enum.

Loaded from `mappings/states.yaml` (or a file named in the config) and
validated at start: a value that is not a `State` is a `StateMapError` naming
the file, line and value. Adapters receive a `StateMap` and call `map`; a
native state nobody listed maps to `State.unknown` rather than failing a poll.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from gateway.contract import State

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "mappings" / "states.yaml"
_VALID = ", ".join(s.value for s in State)


class StateMapError(ValueError):
    def __init__(self, path: Path, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class StateMap:
    def __init__(self, table: dict[str, dict[str, State]], path: Path | None = None) -> None:
        self._table = table
        self.path = path

    @property
    def systems(self) -> list[str]:
        return sorted(self._table)

    def native_states(self, system: str) -> dict[str, State]:
        return dict(self._table.get(system, {}))

    def map(self, system: str, native: str | None) -> State:
        """The `State` for `native` in `system`; None is the key `none`."""
        table = self._table.get(system)
        if table is None:
            raise KeyError(f"state map has no system {system!r}; known: {', '.join(self.systems)}")
        key = "none" if native is None else str(native)
        return table.get(key, table.get(key.lower(), State.unknown))

    @classmethod
    def load(cls, path: Path | str = DEFAULT_PATH) -> StateMap:
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as exc:
            raise StateMapError(path, None, f"cannot read: {exc.strerror}") from exc
        try:
            root = yaml.compose(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise StateMapError(path, line, f"not valid YAML: {exc}") from exc
        if root is None:
            raise StateMapError(path, None, "empty state map")
        if not isinstance(root, yaml.MappingNode):
            raise StateMapError(path, root.start_mark.line + 1, "top level must be a mapping")
        table: dict[str, dict[str, State]] = {}
        for sys_node, states_node in root.value:
            system = str(sys_node.value)
            if not isinstance(states_node, yaml.MappingNode):
                raise StateMapError(
                    path, states_node.start_mark.line + 1, f"{system}: must map native → state"
                )
            entries: dict[str, State] = {}
            for native_node, state_node in states_node.value:
                native = str(native_node.value)
                value = state_node.value if isinstance(state_node, yaml.ScalarNode) else None
                try:
                    entries[native] = State(str(value))
                except ValueError:
                    raise StateMapError(
                        path,
                        state_node.start_mark.line + 1,
                        f"{system}.{native}: {value!r} is not a state (one of: {_VALID})",
                    ) from None
            table[system] = entries
        return cls(table, path)


@lru_cache(maxsize=1)
def default_state_map() -> StateMap:
    return StateMap.load(DEFAULT_PATH)
