"""Settings declared once: resolution, types (enums included), and which command reads which."""

from __future__ import annotations

import pytest

from storage.config import DuplicatePolicy
from wsiarchive import settings


def test_enums_are_read_from_every_source(tmp_path) -> None:
    config = tmp_path / "conf.toml"
    config.write_text('duplicate_policy = "overwrite"\n')
    assert settings.load(config, environ={}).duplicate_policy is DuplicatePolicy.OVERWRITE
    loaded = settings.load(environ={"WSIARCHIVE_DUPLICATE_POLICY": "reject"})
    assert loaded.duplicate_policy is DuplicatePolicy.REJECT
    with pytest.raises(ValueError, match="must be one of reject, overwrite"):
        settings.load(overrides={"duplicate_policy": "ignore"}, environ={})
    assert settings.to_environ(loaded)["WSIARCHIVE_DUPLICATE_POLICY"] == "reject"


def test_every_setting_belongs_to_a_group_some_command_reads() -> None:
    used = {d.name for command in settings.COMMANDS for d in settings.declarations(command)}
    assert used == {d.name for d in settings.declarations()}
    convert = {d.name for d in settings.declarations("convert")}
    assert "dimse_port" not in convert and "port" not in convert and "convert_workers" in convert
    assert "transcode_cache_mb" not in {d.name for d in settings.declarations("import")}


def test_settings_satisfy_the_layers_protocols() -> None:
    """Settings are passed whole: each layer reads its own Protocol of them."""
    from dicomweb.limits import LimitConfig
    from dicomweb.service import WebConfig
    from dimse.server import DimseConfig
    from storage.config import ArchiveConfig

    loaded = settings.Settings()
    for protocol in (ArchiveConfig, WebConfig, LimitConfig, DimseConfig):
        names = [name for name in vars(protocol) if not name.startswith("_")]
        assert names and all(hasattr(loaded, name) for name in names), protocol
