"""Every widget repaints on every field it shows (issue 12: after a verified failover
the region list and the map kept the `◆ DNS` marker on the old region, because a DNS
move or a blocklist listing alone never repainted them).

For each widget: feed a snapshot, then the same snapshot with one field changed,
and assert that what is on the screen changed. The fields come from the dataclass
itself, so a field added later is tested without anyone remembering to."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from noc_widgets.region_list import RegionList
from noc_widgets.region_map import RegionMap
from test_region_map import (
    BUCHAREST,
    PANAMA,
    SOFIA,
    WidgetApp,
    estate,
    region,
    screen_lines,
)

from noc.model import Health, RegionStatus, Role, StoreStatus

BASE = (
    region("ro", "Bucharest", BUCHAREST, role=Role.PRIMARY, active=True),
    region("bg", "Sofia", SOFIA),
    region("pa", "Panama City", PANAMA, Health.DEGRADED),
)

# One new value per field of RegionStatus, for the region "bg".
CHANGED: dict[str, Any] = {
    "id": "bx",
    "name": "Plovdiv",
    "role": Role.PRIMARY,
    "location": (-33.87, 151.21),  # Sydney: far enough to move the marker
    "health": Health.DOWN,
    "checks": (),
    "store": StoreStatus("bg", False, None, "connection refused", 2.0),
    "is_active": True,
    "dns_records": ("smtp.example.com.",),
    "sending_listed": True,
}
# What each widget does not draw, and why.
NOT_DRAWN = {
    RegionList: {"location", "checks"},  # a list has no geography; checks are the table's
    RegionMap: {"checks"},
}


def test_every_region_field_has_a_changed_value() -> None:
    assert {f.name for f in dataclasses.fields(RegionStatus)} == set(CHANGED)


def variant(field: str) -> tuple[RegionStatus, ...]:
    return tuple(
        dataclasses.replace(r, **{field: CHANGED[field]}) if r.id == "bg" else r for r in BASE
    )


@pytest.mark.parametrize("widget_type", [RegionList, RegionMap])
@pytest.mark.parametrize("field", sorted(CHANGED))
async def test_region_widgets_repaint_on_each_field(
    widget_type: type[RegionList | RegionMap], field: str
) -> None:
    if field in NOT_DRAWN[widget_type]:
        pytest.skip(f"{widget_type.__name__} does not draw {field}")
    app = WidgetApp(widget_type(), estate(*BASE))
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        before = screen_lines(app.widget)
        app.widget.snapshot = estate(*variant(field))
        await pilot.pause()
        after = screen_lines(app.widget)
    assert before != after, f"{widget_type.__name__} did not repaint when {field} changed"
