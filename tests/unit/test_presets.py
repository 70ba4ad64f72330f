"""Presets as the example config and the README state them: a preset decides the
interval and threshold unless an explicit key overrides it, and that is shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from noc.config import EXAMPLE, load_config, preset_overrides


def example_with(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = EXAMPLE
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "noc.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("preset", "interval"), [("standard", 30.0), ("tightened", 10.0)])
def test_the_example_detects_as_its_preset_says(
    tmp_path: Path, preset: str, interval: float
) -> None:
    """Switching the example's preset, as its comment invites, changes detection."""
    path = example_with(tmp_path, ('preset = "standard"', f'preset = "{preset}"'))
    loaded = load_config(path)
    targets = loaded.config.check_targets()
    assert {(t.interval_seconds, t.failure_threshold) for t in targets} == {(interval, 3)}
    assert preset_overrides(loaded) == []


def test_an_explicit_interval_beside_a_preset_is_pointed_out(tmp_path: Path) -> None:
    path = example_with(
        tmp_path,
        ('preset = "standard"', 'preset = "tightened"'),
        ("# interval_seconds = 30 ", "interval_seconds = 30   "),
    )
    loaded = load_config(path)
    assert {t.interval_seconds for t in loaded.config.check_targets()} == {30.0}
    (note,) = preset_overrides(loaded)
    assert "health.interval_seconds = 30 overrides preset 'tightened'" in note
