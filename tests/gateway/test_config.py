from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config, parse_config, parse_duration


def test_durations_accept_units_and_reject_nonsense() -> None:
    assert parse_duration("90d") == 90 * 86400
    assert parse_duration("250ms") == 0.25
    assert parse_duration(30) == 30.0
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_secret_comes_from_the_environment_and_is_redacted() -> None:
    cfg = parse_config(
        {"sources": [{"name": "af", "kind": "airflow", "options": {"password": "${AF_PASSWORD}"}}]},
        env={"AF_PASSWORD": "hunter2-secret"},
    )
    assert cfg.sources[0].options["password"] == "hunter2-secret"
    assert cfg.redact("login failed for hunter2-secret") == "login failed for ***"


def test_missing_environment_variable_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]\.options\.password: .*AF_PASSWORD"):
        parse_config(
            {
                "sources": [
                    {"name": "af", "kind": "airflow", "options": {"password": "${AF_PASSWORD}"}}
                ]
            },
            env={},
        )


def test_bad_values_name_the_key_path(tmp_path: Path) -> None:
    p = tmp_path / "switchyard.yaml"
    p.write_text("sources:\n  - name: a\n    kind: airflow\n    interval: often\n")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.interval"):
        load_config(p)
    p.write_text("sources:\n  - name: a\n    kind: nosuchkind\n")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.kind.*unknown source kind"):
        load_config(p)
    p.write_text("sourcez: []\n")
    with pytest.raises(ConfigError, match="sourcez"):
        load_config(p)


def test_duplicate_source_names_are_rejected() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        parse_config({"sources": [{"name": "a", "kind": "cron"}, {"name": "a", "kind": "cron"}]})


def test_retention_off_in_yaml_keeps_everything(tmp_path: Path) -> None:
    p = tmp_path / "switchyard.yaml"
    p.write_text("retention: off\n")
    assert load_config(p).retention is None
    p.write_text("retention: 30d\n")
    assert load_config(p).retention == 30 * 86400


def test_cookie_secure_and_trusted_proxies_are_read_and_checked() -> None:
    cfg = parse_config({"cookie_secure": "true", "trusted_proxies": ["10.0.0.0/8", "127.0.0.1"]})
    assert cfg.cookie_secure is True
    assert cfg.trusted_proxies == ["10.0.0.0/8", "127.0.0.1/32"]
    assert parse_config({}).cookie_secure == "auto" and parse_config({}).trusted_proxies == []
    assert parse_config({"cookie_secure": False}).cookie_secure is False
    with pytest.raises(ConfigError, match=r"cookie_secure: 'sometimes' is not one of auto"):
        parse_config({"cookie_secure": "sometimes"})
    with pytest.raises(ConfigError, match=r"trusted_proxies\[1\]: '\*' is not an IP address"):
        parse_config({"trusted_proxies": ["127.0.0.1", "*"]})
    with pytest.raises(ConfigError, match=r"trusted_proxies\[0\]: .*host bits set"):
        parse_config({"trusted_proxies": ["10.0.0.1/8"]})
    with pytest.raises(ConfigError, match=r"trusted_proxies: .*valid list"):
        parse_config({"trusted_proxies": "10.0.0.0/8"})


def test_values_of_variables_that_env_options_name_are_secret_values() -> None:
    cfg = parse_config(
        {
            "sources": [
                {
                    "name": "lambda-prod",
                    "kind": "lambda",
                    "options": {
                        "access_key_id_env": "AWS_KEY_VAR",
                        "secret_access_key_env": "AWS_SECRET_VAR",
                        "session_token_env": "NOT_SET_HERE",
                    },
                }
            ]
        },
        env={
            "AWS_KEY_VAR": "AKIAEXAMPLEKEY",
            "AWS_SECRET_VAR": "wJalr-secret-value",
            "SWITCHYARD_SESSION_SECRET": "session-key-0123456789",
            "UNRELATED": "visible-value",
        },
    )
    assert cfg.secret_values == {"AKIAEXAMPLEKEY", "wJalr-secret-value", "session-key-0123456789"}
    assert cfg.redact("denied for AKIAEXAMPLEKEY") == "denied for ***"
    # The option names the variable; the name itself is not a secret.
    assert cfg.sources[0].options["access_key_id_env"] == "AWS_KEY_VAR"
