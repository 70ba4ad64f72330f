"""`noc check` run as Nagios runs a plugin, its output read by the plugin guidelines'
grammar (nagios-plugins.org/doc/guidelines.html, "Plugin Output" and "Performance
data"): the first line is `TEXT | PERFDATA`, each datum `'label'=value[UOM];warn;crit;
min;max`, value in [-0-9.] or U, UOM one of s ms us % B KB MB TB c; exit 0-3; a usage
error is UNKNOWN on stdout; -V prints a version; -t bounds the run."""

from __future__ import annotations

import re
from pathlib import Path

from support import stored_flag
from test_cli import REGIONS, Estate, config_args, estate, noc, write_config  # noqa: F401

from noc.check import PerfDatum, plugin_text
from noc.simulator.health_endpoint import EndpointMode

LABEL = r"'(?:[^'=]|'')+'|[^'= ]+"
VALUE = r"-?[0-9.]+|U"
UOM = r"(?:s|ms|us|%|B|KB|MB|TB|c)?"
RANGE = r"@?(?:~|-?[0-9.]+)?(?::(?:-?[0-9.]+)?)?"
NUMBER = r"(?:-?[0-9.]+)?"
DATUM = re.compile(
    rf"(?P<label>{LABEL})=(?P<value>{VALUE})(?P<uom>{UOM})"
    rf"(?:;(?P<warn>{RANGE})(?:;(?P<crit>{RANGE})(?:;(?P<min>{NUMBER})(?:;(?P<max>{NUMBER}))?)?)?)?"
)
STATUS_LINE = re.compile(r"^NOC (OK|WARNING|CRITICAL|UNKNOWN) - [^|]+$")


def split_output(out: str) -> tuple[str, dict[str, re.Match[str]], list[str]]:
    """The guidelines' reading: text before the first `|` on line one, then perf data;
    every later line is long output (which, here, carries no perf data)."""
    first, *rest = out.rstrip("\n").split("\n")
    text, bar, perf = first.partition("|")
    data: dict[str, re.Match[str]] = {}
    for token in re.findall(rf"(?:{LABEL})=\S*", perf.strip()) if bar else ():
        match = DATUM.fullmatch(token)
        assert match is not None, f"perf datum off the grammar: {token!r}"
        data[match["label"].strip("'").replace("''", "'")] = match
    for line in rest:
        assert "|" not in line, f"a | in long output starts perf data: {line!r}"
    return text.strip(), data, rest


async def test_ok_with_latency_perf_data_for_every_check(estate: Estate) -> None:  # noqa: F811
    run = await noc(estate, "check", *config_args(estate))
    assert run.code == 0
    text, data, long_output = split_output(run.out)
    assert STATUS_LINE.match(text) and text.startswith("NOC OK - ")
    for rid, *_ in REGIONS:
        (latency,) = [m for label, m in data.items() if label.startswith(f"{rid} ")]
        assert latency["uom"] == "ms" and latency["value"] != "U"
        assert float(latency["value"]) >= 0
        assert latency["crit"] == "1000"  # the check's timeout (1 s) in the same unit
        assert latency["min"] == "0"
    assert long_output, "the per-region detail follows the first line"


async def test_a_down_check_is_U_and_critical(estate: Estate) -> None:  # noqa: F811
    await estate.endpoints["ro"].set_mode(EndpointMode.DOWN)
    run = await noc(estate, "check", *config_args(estate))
    assert run.code == 2
    text, data, _ = split_output(run.out)
    assert text.startswith("NOC CRITICAL - ro down")
    (ro,) = [m for label, m in data.items() if label.startswith("ro ")]
    assert ro["value"] == "U" and ro["uom"] == ""


async def test_pipes_in_names_and_urls_never_start_perf_data(
    estate: Estate,  # noqa: F811
    tmp_path: Path,
) -> None:
    endpoints = {rid: f"{e.url}?a|b" for rid, e in estate.endpoints.items()}
    stores = {rid: s.url for rid, s in estate.stores.items()}
    path = write_config(tmp_path / "pipes.toml", endpoints, stores)
    text = path.read_text().replace('name = "mail-test"', 'name = "mail|test"')
    text = text.replace("[[regions.checks]]\n", '[[regions.checks]]\nname = "web|front"\n')
    path.write_text(text)
    run = await noc(estate, "check", "--config", str(path))
    text_part, data, long_output = split_output(run.out)
    assert STATUS_LINE.match(text_part)
    latencies = [label for label in data if label.endswith(" latency")]
    assert sorted(latencies) == sorted(f"{rid} web¦front latency" for rid, *_ in REGIONS)
    assert any("?a¦b" in line for line in long_output)
    assert any("mail¦test" in line for line in long_output)


async def test_usage_errors_are_unknown_on_stdout(estate: Estate) -> None:  # noqa: F811
    for args in (["--bogus"], ["-t", "abc"], ["-t", "0"], ["--json", "extra"]):
        run = await noc(estate, "check", *config_args(estate), *args)
        assert run.code == 3, args
        assert run.out.startswith("NOC UNKNOWN - usage: "), (args, run.out)
        assert "Traceback" not in run.err


async def test_version_and_timeout(estate: Estate) -> None:  # noqa: F811
    for flag in ("-V", "--version"):
        run = await noc(estate, "check", flag)
        assert run.code == 0 and re.fullmatch(r"noc \d+\.\d+\.\d+\S*\n", run.out)
    assert (await noc(estate, "--version")).out == run.out
    # Every store black-holed (SIGSTOP): the round cannot finish within 0.3 s.
    for store in estate.stores.values():
        store.pause()
    try:
        run = await noc(estate, "check", *config_args(estate), "-t", "0.3")
    finally:
        for store in estate.stores.values():
            store.resume()
    assert run.code == 3
    assert run.out == "NOC UNKNOWN - no verdict within 0.3 s (-t/--timeout)\n"
    assert stored_flag(estate.stores["ro"]) == {}  # a check changes nothing


def test_perf_datum_formatting() -> None:
    assert str(PerfDatum("ro web latency", 12.25, "ms", crit=2000)) == (
        "'ro web latency'=12.25ms;;2000;0"
    )
    assert str(PerfDatum("it's a=b", None, "s", warn=60)) == "'it''s a:b'=U;60;;0"
    assert str(PerfDatum("huge", 1e12, "B", minimum=None)) == "'huge'=1000000000000B"
    assert str(PerfDatum("rate", 0.0004, "%", 0.1, 0.3, 0, 100)) == "'rate'=0.0004%;0.1;0.3;0;100"
    assert DATUM.fullmatch(str(PerfDatum("nan", float("nan"), "s")))
    assert plugin_text("a|b") == "a¦b"
