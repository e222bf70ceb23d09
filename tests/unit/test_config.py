"""Settings: one dataclass, every setting documented, bad values named."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from monitor import config as config_mod
from monitor.config import Config, ConfigError

README = (Path(__file__).parents[2] / "README.md").read_text()


@pytest.mark.parametrize("setting", config_mod.settings(), ids=lambda f: f.name)
def test_every_setting_is_in_the_readme(setting: object) -> None:
    assert f"`{config_mod.flag_name(setting)}`" in README  # type: ignore[arg-type]
    for env in config_mod.env_names(setting):  # type: ignore[arg-type]
        assert f"`{env}`" in README


def test_environment_then_flags() -> None:
    env = {
        "POSTBACK_MONITOR_PORT": "9000",
        "DATABASE_URL": "postgresql://x/y",
        "POSTBACK_MONITOR_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
    }
    cfg = config_mod.load({}, env)
    assert cfg.port == 9000
    assert cfg.database_url == "postgresql://x/y"
    assert cfg.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert config_mod.load({"port": 9100}, env).port == 9100


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"port": 0}, "port"),
        ({"batch_max_hits": 0}, "batch_max_hits"),
        ({"batch_max_wait_ms": -1}, "batch_max_wait_ms"),
        ({"log_format": "xml"}, "log_format"),
        ({"admin_token": "short"}, "admin_token"),
        ({"trusted_proxies": ("not-a-cidr",)}, "trusted_proxies"),
        ({"max_body_bytes": 10, "hard_max_body_bytes": 5}, "hard_max_body_bytes"),
        ({"node_name": "two words"}, "node_name"),
        ({"node_name": "x" * 64}, "node_name"),
        ({"node_name": "-dash"}, "node_name"),
    ],
)
def test_bad_values_name_the_setting(changes: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Config(**changes)  # type: ignore[arg-type]


def test_bad_number_from_environment() -> None:
    with pytest.raises(ConfigError, match="port"):
        config_mod.load({}, {"POSTBACK_MONITOR_PORT": "eighty"})


def test_base_url_is_the_capture_listener() -> None:
    assert Config(capture_host="0.0.0.0", capture_port=81).base_url == "http://127.0.0.1:81"
    assert Config(capture_host="::1", port=81).base_url == "http://[::1]:8081"
    assert Config(public_url="https://pb.example/").base_url == "https://pb.example"
    both = Config(host="10.0.0.5", port=9000, capture_port=9001, public_url="https://pb.example")
    assert both.management_url == "http://10.0.0.5:9000"


def test_the_listeners_need_their_own_address() -> None:
    with pytest.raises(ConfigError, match="capture_port"):
        Config(port=9000, capture_port=9000)
    assert Config(host="127.0.0.2", port=9000, capture_port=9000).capture_port == 9000


def test_the_node_is_named_or_the_host() -> None:
    assert Config(node_name="capture-eu-1.example").node == "capture-eu-1.example"
    assert Config().node == socket.gethostname()
    env = {"POSTBACK_MONITOR_NODE_NAME": "b"}
    assert config_mod.load({}, env).node == "b"
    # Workers of serve --workers N load their settings back: one node, one name.
    assert config_mod.load({}, config_mod.to_environ(Config(node_name="n1"))).node == "n1"
