"""Inline secrets in job definitions, masked before a `JobSpec` is stored.

Every viewer can read a stored job spec (`GET /api/v1/jobs/{id}`, the
dashboard), and a definition copied from a scheduler often carries
credentials written inline. `mask_spec_data` replaces them with `MASKED`
in the spec's JSON form, which is what `gateway.ingest` stores:

- **container environment**: the literal `value` of every entry of an `env`
  list (a Kubernetes pod template's `env[].value`) and every value of an
  `env`, `env_vars` or `environment` mapping, nested ones included (Airflow's
  `env_vars`, Lambda's `Environment.Variables`). Whether an environment
  value is secret cannot be told from its name, so all are masked;
  references (`valueFrom`, `$(VAR)`, `${VAR}`, `{{ … }}`) are kept;
- **credential-named keys**: the string value of a key that names a
  credential (`password`, `db_passwd`, `client_secret`, `auth_token`,
  `api_key`, `Authorization`…), but not of one that names a reference to it
  (`secretName`, `password_file`, `token_path`, `api_key_env`…);
- **inside text** (commands, arguments, connection strings): the password of
  a URI (`postgres://etl:<masked>@db/x`) and the value of `password=…`,
  `--token=…`, `"api_key": "…"`, `secret: …` and `Authorization: Bearer …`
  forms; text that is JSON (kubectl's `last-applied-configuration`
  annotation holds the whole manifest) is masked by these same rules as data;
- **the DAG file** (`source_text` of a `dag`): the same text rules inside each
  string literal, and the whole literal assigned to a credential-named
  keyword, variable or dict key (`password="…"`), so the file still parses
  and its callables can still be lifted.

The key and the structure stay, so the translator (`migration_tools.translate`)
knows where a value was: a wholly masked value becomes a Kestra
`{{ secret('…') }}` reference and a masked part of a text is flagged for
review. Limits: a credential in any other shape (`-pSECRET`, `--password
SECRET` with a space, a bare token in a command) is not recognised, so
keep credentials out of definitions (use Secrets, connections, variables).
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from typing import Any

MASKED = "<masked-by-switchyard>"

_CREDENTIAL = (
    r"passw(?:or)?d|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|authorization|credentials?"
)
_CREDENTIAL_KEY = re.compile(rf"(?i)(?:{_CREDENTIAL})")
# A key that names where a credential is, not the credential itself.
_REFERENCE_KEY = re.compile(
    r"(?i)(?:name|names|ref|id|ids|file|path|arn|env|var|url|uri|endpoint|type|kind|"
    r"mount|expiry|ttl|length|version)s?$"
)
_ENV_KEYS = frozenset({"env", "env_vars", "environment"})
_REFERENCE_VALUE = re.compile(r"^\s*(?:\{\{|\{%|\$\{?\w+\}?\s*$|\$\(\w+\)\s*$)")
_URI_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s'\"]*:)([^@/?#\s'\"]+)(@)")
_ASSIGNED = re.compile(
    rf"(?i)(?<![A-Za-z0-9])([A-Za-z0-9_.-]*(?:{_CREDENTIAL})[A-Za-z0-9_.-]*)"
    r"(['\"]?[ \t]*[=:][ \t]*)"
    r"(?:(['\"])(.*?)\3|((?:Bearer|Basic|Token|Digest|Bot)[ \t]+)?([^\s'\"&;,|)}\]]+))"
)
_HINT = re.compile(rf"(?i)://|{_CREDENTIAL}")
_FSTRING_MIDDLE = getattr(tokenize, "FSTRING_MIDDLE", -1)


def _is_reference(value: str) -> bool:
    return bool(_REFERENCE_VALUE.match(value)) or value == MASKED


def credential_key(key: str) -> bool:
    """Does `key` name a credential (not a reference to one)?"""
    return bool(_CREDENTIAL_KEY.search(key)) and not _REFERENCE_KEY.search(key)


def _masked_value(value: str) -> str:
    return value if not value.strip() or _is_reference(value) else MASKED


def mask_text(text: str) -> str:
    """`text` with URI passwords and `credential=value` values replaced by `MASKED`."""
    if not _HINT.search(text):
        return text

    def uri(m: re.Match[str]) -> str:
        return m.group(1) + _masked_value(m.group(2)) + m.group(3)

    def assigned(m: re.Match[str]) -> str:
        key, sep, quote, quoted, scheme, bare = m.groups()
        if not credential_key(key.strip("-")) or MASKED in (quoted or bare):
            return m.group(0)
        if quote:
            return f"{key}{sep}{quote}{_masked_value(quoted)}{quote}"
        return f"{key}{sep}{scheme or ''}{_masked_value(bare)}"

    return _ASSIGNED.sub(assigned, _URI_PASSWORD.sub(uri, text))


def _mask_environment(node: Any) -> Any:
    """Every literal value of an environment (list of {name, value} or a mapping)."""
    if isinstance(node, str):
        return _masked_value(node)
    if isinstance(node, list):
        out: list[Any] = []
        for item in node:
            if isinstance(item, dict) and "value" in item:
                entry = dict(item)
                if isinstance(entry["value"], str):
                    entry["value"] = _masked_value(entry["value"])
                out.append(_mask_node(entry))
            elif isinstance(item, str) and "=" in item:  # ["NAME=value", …]
                name, _, value = item.partition("=")
                out.append(f"{name}={_masked_value(value)}")
            else:
                out.append(_mask_node(item))
        return out
    if isinstance(node, dict):
        return {
            k: _mask_node(v) if k == "valueFrom" else _mask_environment(v) for k, v in node.items()
        }
    return node


def _mask_string(text: str) -> str:
    """`mask_text`, or for JSON text (kubectl's last-applied annotation) the structure masked."""
    if text.lstrip().startswith(("{", "[")):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict | list):
            masked = _mask_node(parsed)
            return text if masked == parsed else json.dumps(masked, separators=(",", ":"))
    return mask_text(text)


def _mask_node(node: Any) -> Any:
    if isinstance(node, str):
        return _mask_string(node)
    if isinstance(node, list):
        return [_mask_node(v) for v in node]
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if str(key).lower() in _ENV_KEYS and isinstance(value, list | dict):
                out[key] = _mask_environment(value)
            elif isinstance(value, str) and credential_key(str(key)):
                out[key] = _masked_value(value)
            else:
                out[key] = _mask_node(value)
        return out
    return node


def _string_parts(token: str) -> tuple[str, str, str] | None:
    """(prefix and opening quote, content, closing quote) of a string literal token."""
    m = re.match(r"(?s)^([A-Za-z]*)('\'\'|\"\"\"|'|\")(.*)\2$", token)
    if m is None:
        return None
    return m.group(1) + m.group(2), m.group(3), m.group(2)


def _token_text(token: tokenize.TokenInfo) -> str:
    """A NAME's text, or a plain string literal's content (a dict key)."""
    if token.type == tokenize.NAME:
        return token.string
    parts = _string_parts(token.string) if token.type == tokenize.STRING else None
    return parts[1] if parts else ""


def _environment_spans(tokens: list[tokenize.TokenInfo]) -> list[tuple[int, int]]:
    """Index ranges of the bracketed values given to `env=`, `env_vars=`, `"environment":`."""
    spans = []
    for i in range(len(tokens) - 2):
        key, sep, opening = tokens[i : i + 3]
        if (
            _token_text(key).lower() in _ENV_KEYS
            and sep.string in ("=", ":")
            and opening.string in ("{", "[", "(")
        ):
            depth = 0
            for j in range(i + 2, len(tokens)):
                if tokens[j].type == tokenize.OP and tokens[j].string in "{[(":
                    depth += 1
                elif tokens[j].type == tokenize.OP and tokens[j].string in "}])":
                    depth -= 1
                    if depth == 0:
                        spans.append((i + 2, j))
                        break
    return spans


def mask_python_source(text: str) -> str:
    """A Python file with the credentials in its string literals masked; it still parses.

    Masked whole: a literal assigned to a credential-named keyword, variable or
    dict key, and a value inside what is passed as `env`/`env_vars`/
    `environment` (a dict value, or `value=` of an `EnvVar`). Every other
    literal gets `mask_text`. Text that does not tokenize as Python gets
    `mask_text` as a whole.
    """
    if not _HINT.search(text) and not any(key in text for key in _ENV_KEYS):
        return text
    lines = io.StringIO(text).readlines()
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(iter(lines).__next__)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT)
        ]
    except (tokenize.TokenError, SyntaxError, StopIteration):
        return mask_text(text)
    line_starts = [0]
    for line in lines:
        line_starts.append(line_starts[-1] + len(line))
    environments = _environment_spans(tokens)
    edits: list[tuple[int, int, str]] = []
    for i, tok in enumerate(tokens):
        if tok.type == _FSTRING_MIDDLE:  # Python 3.12+: an f-string's text between its fields
            parts: tuple[str, str, str] | None = ("", tok.string, "")
        elif tok.type == tokenize.STRING:
            parts = _string_parts(tok.string)
        else:
            parts = None
        if parts is None:
            continue
        opening, content, closing = parts
        key, sep = (tokens[i - 2], tokens[i - 1]) if i >= 2 else (None, None)
        assigned = sep is not None and sep.string in ("=", ":")
        named = assigned and key is not None and credential_key(_token_text(key))
        in_environment = (
            assigned
            and key is not None
            and _token_text(key) != "name"
            and any(lo < i < hi for lo, hi in environments)
        )
        masked = _masked_value(content) if named or in_environment else mask_text(content)
        if masked != content:
            start = line_starts[tok.start[0] - 1] + tok.start[1]
            end = line_starts[tok.end[0] - 1] + tok.end[1]
            edits.append((start, end, opening + masked + closing))
    for start, end, replacement in reversed(edits):
        text = text[:start] + replacement + text[end:]
    return text


def mask_spec_data(data: dict[str, Any]) -> dict[str, Any]:
    """A `JobSpec`'s JSON form (`model_dump(mode="json")`) with its inline secrets masked."""
    out = dict(data)
    out["definition"] = _mask_node(data.get("definition") or {})
    out["tasks"] = [
        dict(task, arguments=_mask_node(task.get("arguments") or {}))
        for task in data.get("tasks") or []
    ]
    source_text = data.get("source_text")
    if isinstance(source_text, str):
        masker = mask_python_source if data.get("kind") == "dag" else mask_text
        out["source_text"] = masker(source_text)
    return out


__all__ = ["MASKED", "credential_key", "mask_python_source", "mask_spec_data", "mask_text"]
