"""`[control]`: a primary's URL or Sentinels with the service they watch, not both."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from noc.config import ControlConfig


def test_a_url_or_sentinels_with_a_service_name() -> None:
    assert ControlConfig(redis_url="redis://127.0.0.1:6379/0").describe().startswith("redis://")
    sentinel = ControlConfig(sentinels=("10.0.0.1:26379", "[::1]:26380"), service_name="noc")
    assert sentinel.sentinel_addresses() == [("10.0.0.1", 26379), ("::1", 26380)]
    assert "Sentinel service noc" in sentinel.describe()


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({}, "either redis_url or sentinels"),
        (
            {"redis_url": "redis://h:1/0", "sentinels": ("h:2",), "service_name": "n"},
            "either redis_url or sentinels",
        ),
        ({"sentinels": ("h:2",)}, "need service_name"),
        ({"sentinels": ("nohost",), "service_name": "n"}, "a Sentinel is host:port"),
        ({"sentinels": ("h:99999",), "service_name": "n"}, "a Sentinel is host:port"),
    ],
)
def test_a_control_plane_said_wrong_is_named(fields: dict[str, object], said: str) -> None:
    with pytest.raises(ValidationError, match=said):
        ControlConfig.model_validate(fields)
