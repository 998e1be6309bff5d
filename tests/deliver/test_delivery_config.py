"""The delivery settings in kabar.yaml: short durations, limits, located errors."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kabar import config as config_module
from kabar.config import ConfigError, format_duration, parse_duration

from ..support.project import WriteConfig


def test_milliseconds_for_fast_retries_and_leases(write_config: WriteConfig) -> None:
    path = write_config(delivery={"lease": "1500ms", "retry_backoff": "50ms"})
    delivery = config_module.load(path).delivery
    assert delivery.lease == timedelta(milliseconds=1500)
    assert delivery.retry_backoff == timedelta(milliseconds=50)
    assert format_duration(parse_duration("250ms")) == "250ms"
    assert format_duration(parse_duration("90s")) == "90s"


def test_a_lease_of_nothing_is_refused_where_it_is_written(write_config: WriteConfig) -> None:
    path = write_config(delivery={"transport": "outbox", "lease": "0s"})
    with pytest.raises(ConfigError) as caught:
        config_module.load(path)
    [problem] = caught.value.problems
    assert problem.endswith("delivery.lease: Input should be greater than 0 seconds")
    assert problem.startswith(f"{path}:")
