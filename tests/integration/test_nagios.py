"""`noc check` run as Nagios runs a plugin, its output read by the plugin guidelines'
grammar (nagios-plugins.org/doc/guidelines.html, "Plugin Output" and "Performance
data"): the first line is `TEXT | PERFDATA`, each datum `'label'=value[UOM];warn;crit;
min;max`, value in [-0-9.] or U, UOM one of s ms us % B KB MB TB c; exit 0-3; a usage
error is UNKNOWN on stdout; -V prints a version; -t bounds the run."""

from __future__ import annotations

import asyncio
import calendar
import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import estate_config, feed_mail, feed_round, stored_flag, with_mail
from test_cli import REGIONS, Estate, config_args, estate, noc, write_config  # noqa: F401

from noc.check import PerfDatum, PerfLimits, QueueLimits, plugin_text, report_text
from noc.clock import FakeClock
from noc.engine import Engine
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


def perf_data(perf: str) -> dict[str, re.Match[str]]:
    """Perf data by label (unquoted); every datum must be on the grammar."""
    data: dict[str, re.Match[str]] = {}
    for token in re.findall(rf"(?:{LABEL})=\S*", perf.strip()):
        match = DATUM.fullmatch(token)
        assert match is not None, f"perf datum off the grammar: {token!r}"
        data[match["label"].strip("'").replace("''", "'")] = match
    return data


def split_output(out: str) -> tuple[str, dict[str, re.Match[str]], list[str]]:
    """The guidelines' reading: text before the first `|` on line one, then perf data;
    every later line is long output (which, here, carries no perf data)."""
    first, *rest = out.rstrip("\n").split("\n")
    text, bar, perf = first.partition("|")
    data = perf_data(perf) if bar else {}
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


# --- a real Nagios Core runs noc check ---------------------------------------------

NAGIOS = shutil.which("nagios4") or shutil.which("nagios")
needs_nagios = pytest.mark.skipif(
    NAGIOS is None and not os.environ.get("NOC_REQUIRE_NAGIOS"),
    reason="apt-get install nagios4-core",
)

OBJECTS = """\
define command {{
  command_name check_noc
  command_line {plugin}
}}
define command {{
  command_name nothing
  command_line /bin/true
}}
define timeperiod {{
  timeperiod_name always
  alias always
{days}
}}
define contact {{
  contact_name nobody
  service_notification_period always
  host_notification_period always
  service_notification_options n
  host_notification_options n
  service_notification_commands nothing
  host_notification_commands nothing
}}
define host {{
  host_name noc
  address 127.0.0.1
  check_command nothing
  max_check_attempts 1
  check_period always
  contacts nobody
  notification_period always
  active_checks_enabled 0
}}
define service {{
  host_name noc
  service_description estate
  check_command check_noc
  max_check_attempts 1
  check_interval 1
  retry_interval 1
  check_period always
  contacts nobody
  notification_period always
  notifications_enabled 0
}}
"""

# Nagios writes each result, split its own way, to this file: state, output, perf data.
MAIN = """\
cfg_file={dir}/objects.cfg
log_file={dir}/nagios.log
temp_file={dir}/nagios.tmp
temp_path={dir}
lock_file={dir}/nagios.lock
check_result_path={dir}/spool
object_cache_file={dir}/objects.cache
precached_object_file={dir}/objects.precache
status_file={dir}/status.dat
retain_state_information=0
check_external_commands=0
nagios_user={user}
nagios_group={group}
interval_length=1
use_syslog=0
enable_notifications=0
max_service_check_spread=1
service_check_timeout=60
process_performance_data=1
service_perfdata_file={dir}/perf.dat
service_perfdata_file_template=$SERVICESTATEID$\\t$SERVICEOUTPUT$\\t$SERVICEPERFDATA$
service_perfdata_file_mode=a
service_perfdata_file_processing_interval=0
"""


def nagios_result(directory: Path, estate: Estate, config: Path) -> tuple[int, str, str]:  # noqa: F811
    """Run Nagios Core until it has run `noc check` once; what Nagios made of it."""
    assert NAGIOS is not None, "nagios4 is not installed"
    (directory / "spool").mkdir(parents=True)
    plugin = directory / "check_noc"
    env = {**estate.env(), "PYTHONPATH": os.pathsep.join(sys.path)}
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items() if k.isidentifier())
    plugin.write_text(
        f"#!/bin/sh\n{exports}exec {shlex.quote(sys.executable)} -m noc check "
        f"--config {shlex.quote(str(config))}\n"
    )
    plugin.chmod(0o755)
    days = "\n".join(f"  {day} 00:00-24:00" for day in calendar.day_name).lower()
    (directory / "objects.cfg").write_text(OBJECTS.format(plugin=plugin, days=days))
    (directory / "nagios.cfg").write_text(
        MAIN.format(
            dir=directory,
            user=pwd.getpwuid(os.getuid()).pw_name,
            group=grp.getgrgid(os.getgid()).gr_name,
        )
    )
    perf = directory / "perf.dat"
    process = subprocess.Popen(
        [NAGIOS, str(directory / "nagios.cfg")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (perf.exists() and perf.read_text().endswith("\n")):
            assert process.poll() is None, (directory / "nagios.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Nagios never ran the check"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    state, output, perfdata = perf.read_text().splitlines()[0].split("\t")
    return int(state), output, perfdata


@needs_nagios
async def test_nagios_core_reads_the_verdict_and_perf_data(
    estate: Estate,  # noqa: F811
    tmp_path: Path,
) -> None:
    await estate.endpoints["bg"].set_mode(EndpointMode.UNAVAILABLE)
    endpoints = {rid: f"{e.url}?a|b" for rid, e in estate.endpoints.items()}
    stores = {rid: s.url for rid, s in estate.stores.items()}
    config = write_config(tmp_path / "pipes.toml", endpoints, stores)
    config.write_text(
        config.read_text().replace("[[regions.checks]]\n", '[[regions.checks]]\nname = "a|b"\n')
    )
    state, output, perfdata = await asyncio.to_thread(
        nagios_result, tmp_path / "nagios", estate, config
    )
    assert state == 2  # CRITICAL, as noc's exit code said
    assert output.startswith("NOC CRITICAL - bg down")
    labels = perf_data(perfdata)
    assert set(labels) >= {f"{rid} a¦b latency" for rid, *_ in REGIONS}
    assert labels["bg a¦b latency"]["value"] == "U"
    assert float(labels["ro a¦b latency"]["value"]) > 0


def test_queue_depth_and_rejections_are_perf_data_beside_their_thresholds() -> None:
    """Each region with [regions.mta]: its queues, their depth against
    queue_depth_threshold, the oldest deferred age against its threshold, and
    rejections a minute by class against theirs; U where the exporter is unread."""
    clock = FakeClock()
    config = with_mail(estate_config())
    engine = Engine(config, clock)
    feed_round(engine, clock)
    feed_mail(engine, clock)
    limits = PerfLimits(
        60,
        0.001,
        0.003,
        queues={r.id: QueueLimits(500, 3600, 60) for r in config.regions},
    )
    text, data, _ = split_output(report_text(engine.snapshot(), limits))
    assert text.startswith("NOC ")

    def datum(label: str) -> tuple[str, str, str]:
        match = data[label]
        return match["value"], match["uom"], match["warn"]

    assert datum("bg queue active") == ("1", "", "")
    assert datum("bg queue deferred") == ("420", "", "")
    assert datum("bg queue hold") == ("380", "", "")
    assert datum("bg queue depth") == ("801", "", "500")
    assert datum("bg oldest deferred") == ("5400", "s", "3600")
    assert datum("bg rejections 4xx per min") == ("58", "", "60")
    assert datum("bg rejections 5xx per min") == ("412", "", "60")
    assert datum("ro queue depth") == ("9", "", "500")
    # pa's exporter did not answer: every figure unknown, never a zero.
    for label in ("queue deferred", "queue depth", "oldest deferred", "rejections 5xx per min"):
        assert data[f"pa {label}"]["value"] == "U"
