"""`ServerConfig.load`: defaults, file, environment and flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from disco.errors import ConfigError
from disco.server import ServerConfig


def test_defaults() -> None:
    """Prepare nothing; the defaults are the documented ones."""
    config = ServerConfig.load(env={})
    assert (config.host, config.port, config.keep_rounds) == ("127.0.0.1", 8000, 3)
    assert config.admin_token is None and not config.allow_open_creation
    assert config.max_frame_bytes == 256 * 2**20 and config.seed_catalog


def test_layers_apply_in_order(tmp_path: Path) -> None:
    """Prepare a TOML file, env vars and a flag; later layers win and None flags are ignored."""
    file = tmp_path / "disco.toml"
    file.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\nkeep_rounds = 5\n')
    env = {"DISCO_PORT": "9100", "DISCO_ADMIN_TOKEN": "secret-token", "HOME": "/x"}
    config = ServerConfig.load(file, env=env, keep_rounds=7, host=None, log_level="DEBUG")
    assert (config.port, config.host, config.keep_rounds) == (9100, "0.0.0.0", 7)
    assert config.admin_token == "secret-token" and config.log_level == "debug"


def test_json_file(tmp_path: Path) -> None:
    """Prepare a JSON file without a section; it is read as settings."""
    file = tmp_path / "disco.json"
    file.write_text('{"data_dir": "/srv/disco", "seed_catalog": false}')
    config = ServerConfig.load(file, env={})
    assert config.data_dir == Path("/srv/disco") and config.seed_catalog is False


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"env": {"DISCO_PORT": "eighty"}}, "port (from environment variable DISCO_PORT)"),
        ({"env": {}, "keep_rounds": 0}, "keep_rounds (from command line)"),
        ({"env": {"DISCO_ADMIN_TOKEN": "short"}}, "admin_token"),
    ],
)
def test_bad_values_name_field_and_source(kwargs: dict[str, object], text: str) -> None:
    """Prepare one bad value; the error names the field and where it came from."""
    with pytest.raises(ConfigError, match="invalid server configuration") as info:
        ServerConfig.load(**kwargs)  # type: ignore[arg-type]
    assert text in str(info.value)


def test_bad_files(tmp_path: Path) -> None:
    """Prepare an unknown key, broken TOML and a missing file; each is a `ConfigError`."""
    unknown = tmp_path / "a.toml"
    unknown.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        ServerConfig.load(unknown, env={})
    broken = tmp_path / "b.toml"
    broken.write_text("port = = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ServerConfig.load(broken, env={})
    with pytest.raises(ConfigError, match="cannot read"):
        ServerConfig.load(tmp_path / "missing.toml", env={})
