"""The one list of run() keywords: environment variables, precedence, validation, the CLI's flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aeros import WebServer
from aeros_core.cli import parser
from aeros_core.runner.settings import ServerSettings


def test_environment_variables_are_typed():
    settings = ServerSettings.resolve(
        {},
        {
            "AEROS_WORKERS": "4",
            "AEROS_KEEP_ALIVE_TIMEOUT": "2.5",
            "AEROS_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "AEROS_ACCESS_LOG_TO_STD": "false",
            "AEROS_MAX_CONNECTIONS": "none",
            "AEROS_LOG_LEVEL": "10",
        },
    )
    assert settings.workers == 4
    assert settings.keep_alive_timeout == 2.5
    assert settings.trusted_proxies == ["10.0.0.0/8", "127.0.0.1"]
    assert settings.access_log_to_std is False
    assert settings.max_connections is None
    assert settings.log_level == 10


@pytest.mark.parametrize(
    ("variable", "value"),
    [("AEROS_WORKERS", "four"), ("AEROS_WORKERS", "0"), ("AEROS_PROXY_PROTOCOL", "maybe"), ("AEROS_LOG_LEVEL", "LOUD")],
)
def test_a_bad_environment_value_names_its_variable(variable, value):
    with pytest.raises(ValueError, match=variable):
        ServerSettings.resolve({}, {variable: value})


def test_code_wins_over_the_environment_which_wins_over_the_default():
    environ = {"AEROS_WORKERS": "3", "AEROS_GRACEFUL_TIMEOUT": "7"}
    settings = ServerSettings.resolve({"workers": 2}, environ)
    assert (settings.workers, settings.graceful_timeout, settings.drain_delay) == (2, 7.0, 0.0)


def test_other_keywords_go_to_the_backend():
    settings = ServerSettings.resolve({"h2_max_concurrent_streams": 50, "backend_options": {"a": 1}}, {})
    assert settings.backend_options == {"a": 1, "h2_max_concurrent_streams": 50}


def test_a_thread_refuses_the_supervisors_keywords_and_ignores_their_variables():
    with pytest.raises(TypeError, match="workers"):
        ServerSettings.resolve({"workers": 2}, {}, thread=True)
    assert ServerSettings.resolve({}, {"AEROS_WORKERS": "4"}, thread=True).workers == 1


def test_the_constructors_address_counts_as_code(monkeypatch):
    monkeypatch.setenv("AEROS_PORT", "9001")
    given = WebServer(__name__, port=8123)._run_keywords(None, None, {})
    assert ServerSettings.resolve(given).port == 8123
    given = WebServer(__name__)._run_keywords(None, None, {})
    assert ServerSettings.resolve(given).port == 9001


def test_cli_flags_are_derived_from_the_settings():
    args = parser().parse_args(["run", "mod:app", "--workers", "3", "--no-access-log", "--drain-delay", "1.5"])
    given = {name: getattr(args, name) for name in ServerSettings.keywords() if hasattr(args, name)}
    assert given == {"workers": 3, "access_log_to_std": False, "drain_delay": 1.5}
    with pytest.raises(SystemExit):
        parser().parse_args(["run", "mod:app", "--workers", "many"])


def test_cli_help_lists_every_keyword_with_its_variable():
    done = subprocess.run([sys.executable, "-m", "aeros_core.cli", "run", "--help"], capture_output=True, text=True)
    help_text = " ".join(done.stdout.split())
    for name in ServerSettings.keywords():
        assert f"--{name.replace('_', '-')}" in help_text
        assert ServerSettings.env_name(name) in help_text
