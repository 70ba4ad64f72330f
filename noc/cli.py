"""The `noc` command. Exit codes are public interface (see README)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import logging.handlers
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from noc import __version__
from noc.audit import (
    EstatePaths,
    JsonlLog,
    RecordNotWritten,
    default_audit_path,
    demo_paths,
    estate_paths,
    operator_identity,
    prepare_state,
    read_jsonl,
)
from noc.check import (
    PerfLimits,
    QueueLimits,
    Status,
    plugin_text,
    report_json,
    report_text,
    verdict,
)
from noc.clock import SystemClock
from noc.codes import EXIT_INTERRUPTED, EXIT_NOTHING_CHANGED, EXIT_USAGE, Choice
from noc.config import (
    EXAMPLE,
    ConfigError,
    ControlConfig,
    LoadedConfig,
    NocConfig,
    effective_values,
    load_config,
    preset_overrides,
)
from noc.model import ActionKind, ActionPlan, ActionResult, Interface, mask_secrets
from noc.ui_settings import add_display_flags, apply_display_flags, is_read_only

# The operations layer, the recovery and the scheduler (with every store and DNS
# library behind them) are imported by the commands that use them: `noc check`, run
# by a monitoring system every minute for every service, loads only what it needs.
if TYPE_CHECKING:
    from noc.operations import Confirmation, Operations, Outcome, RecoveryOptions
    from noc.recovery import Decision, FlagSplit, Interrupted

# httpx imports its own command-line client (click, rich, pygments: a tenth of
# `noc check`'s start) whenever those are installed, and noc never runs it. A None
# entry makes that import fail, which httpx expects and answers with a stub.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

# Under Nagios' own service_check_timeout (60 s): noc says UNKNOWN itself, with a reason,
# before Nagios kills it and reports a bare timeout.
CHECK_TIMEOUT_SECONDS = 30.0
# A typed answer longer than this is not an answer: the read stops there.
_MAX_ANSWER_BYTES = 1024


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 3: UNKNOWN for a Nagios plugin, "usage" for failover."""

    # `noc check`: a monitoring system reads stdout, so a usage error says UNKNOWN there.
    plugin_output = False

    def error(self, message: str) -> NoReturn:
        if self.plugin_output:
            print(plugin_text(f"NOC UNKNOWN - usage: {message}"))
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _version() -> str:
    return f"noc {__version__}"


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--config", metavar="PATH", default=argparse.SUPPRESS, help="configuration file (TOML)"
    )
    parser = _Parser(
        prog="noc",
        description="A terminal dashboard for multi-region email operations.",
        parents=[common],
    )
    parser.add_argument(
        "--read-only", action="store_true", help="hide every action that changes anything"
    )
    parser.add_argument("-V", "--version", action="version", version=_version())
    parser.add_argument(
        "--standalone", action="store_true",
        help="poll the estate from here even when [control] is configured",
    )  # fmt: skip
    add_display_flags(parser)
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = commands.add_parser("demo", help="run the dashboard on a simulated three-region estate")
    demo.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS)
    add_display_flags(demo, default=argparse.SUPPRESS)

    check = commands.add_parser(
        "check",
        parents=[common],
        help="one collection round, Nagios-style",
    )
    assert isinstance(check, _Parser)
    check.plugin_output = True
    check.add_argument("--json", action="store_true", help="print JSON instead of text")
    check.add_argument("-V", "--version", action="version", version=_version())
    check.add_argument(
        "-t",
        "--timeout",
        type=_positive_seconds,
        default=CHECK_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"UNKNOWN when there is no verdict within this (default {CHECK_TIMEOUT_SECONDS:g})",
    )
    check.add_argument(
        "--standalone", action="store_true", default=argparse.SUPPRESS,
        help="probe the estate from here instead of reading the agents' shared verdicts",
    )  # fmt: skip

    agent = commands.add_parser(
        "agent",
        parents=[common],
        help="poll and publish to the control plane ([control]) with no screen",
    )
    agent.add_argument(
        "--vantage", required=True, metavar="NAME",
        help="this agent's vantage point (one agent per name), e.g. ro, bg, outside",
    )  # fmt: skip

    for kind in ActionKind:
        moves_region = kind in (ActionKind.DRAIN, ActionKind.RESTORE)
        helps = {
            ActionKind.SWITCHOVER: "planned move: wait for replication to drain, then flip",
            ActionKind.DRAIN: "active-active: take a region out of the DNS records",
            ActionKind.RESTORE: "active-active: put a drained region back",
        }
        action = commands.add_parser(
            kind.value,
            parents=[common],
            help=helps.get(kind, f"{kind.value} to a region (STOP pattern)"),
        )
        if moves_region:
            action.add_argument(
                "--region", dest="to", required=True, metavar="REGION", help="the region"
            )
        else:
            action.add_argument(
                "--to", required=True, metavar="REGION", help="the region to make active"
            )
        action.add_argument(
            "--reason", required=True, metavar="TEXT", help="why (goes to the audit log)"
        )
        action.add_argument(
            "--dry-run", action="store_true", help="show the plan and blast radius; change nothing"
        )
        action.add_argument(
            "--yes", action="store_true", help="do not ask for the typed confirmation"
        )
        action.add_argument(
            "--force",
            action="store_true",
            help="break glass: bypass the failed safety rules (each is listed and recorded)",
        )

    cooldown = commands.add_parser(
        "ack-cooldown",
        parents=[common],
        help="clear the anti-flap cooldown of the last failover (recorded)",
    )
    cooldown.add_argument("--reason", required=True, metavar="TEXT", help="why (audit log)")

    recover = commands.add_parser(
        "recover",
        parents=[common],
        help="finish or undo an interrupted action; re-assert the flag on stores that lost it",
    )
    choice = recover.add_mutually_exclusive_group()
    choice.add_argument(
        "--complete", dest="choice", action="store_const", const=Choice.COMPLETE,
        help="finish an interrupted action toward its target",
    )  # fmt: skip
    choice.add_argument(
        "--roll-back", dest="choice", action="store_const", const=Choice.ROLL_BACK,
        help="put back what an interrupted action changed",
    )  # fmt: skip
    choice.add_argument(
        "--close", dest="choice", action="store_const", const=Choice.CLOSE,
        help="end the record of an interrupted action and write nothing (superseded)",
    )  # fmt: skip
    recover.add_argument(
        "--force", action="store_true",
        help="settle even though a forceable rule fails now (asks for FORCE; recorded)",
    )  # fmt: skip
    recover.add_argument("--reason", default="", help="why (recorded with the recovery)")
    recover.add_argument(
        "--dry-run", action="store_true", help="show what is interrupted and what each choice does"
    )
    recover.add_argument(
        "--yes", action="store_true",
        help="do not ask: the chosen (or else the recommended) way, and re-assert the flag",
    )  # fmt: skip

    sync = commands.add_parser("sync", parents=[common], help="copy missing suppression entries")
    sync.add_argument("--from", dest="source", required=True, metavar="REGION")
    sync.add_argument("--to", dest="target", required=True, metavar="REGION")
    sync.add_argument(
        "--list", dest="lists", action="append", metavar="LIST", help="only this list (repeatable)"
    )

    serve = commands.add_parser(
        "serve", parents=[common], help="publish the dashboard to browsers (textual-serve)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--public-url", metavar="URL", help="the URL browsers use, if not host:port")
    serve.add_argument("--demo", action="store_true", help="serve the simulated estate")
    add_display_flags(serve, default=argparse.SUPPRESS)

    audit = commands.add_parser(
        "audit", parents=[common], help="show the audit log of the configured estate"
    )
    audit.add_argument("--demo", action="store_true", help="the demo's audit log instead")
    audit.add_argument("--json", action="store_true", help="print the records as a JSON array")
    audit.add_argument("--limit", type=int, default=0, metavar="N", help="only the last N records")

    maintenance = commands.add_parser(
        "maintenance",
        help="maintenance windows: a region's alerts page no one, automation leaves it alone",
    )
    windows = maintenance.add_subparsers(
        dest="maintenance_command", required=True, parser_class=_Parser
    )
    add = windows.add_parser("add", parents=[common], help="open a window (recorded)")
    add.add_argument("--region", required=True, metavar="REGION", help="the region worked on")
    add.add_argument(
        "--for", dest="duration", required=True, metavar="DURATION",
        help="how long: 2h, 90m, 1h30m, 1d (at most 7 days)",
    )  # fmt: skip
    add.add_argument("--reason", required=True, metavar="TEXT", help="why (audit log, pages)")
    add.add_argument(
        "--at", metavar="TIME",
        help="start later: 2026-12-03T22:00Z, 22:00 (UTC, next such time) or +30m",
    )  # fmt: skip
    listing = windows.add_parser(
        "list", parents=[common], help="active and scheduled windows, then recent ones"
    )
    listing.add_argument("--json", action="store_true", help="print the windows as JSON")
    end = windows.add_parser("end", parents=[common], help="end a window now (recorded)")
    end.add_argument("id", metavar="ID", help="the window's id (from `noc maintenance list`)")
    drill = commands.add_parser(
        "drill", help="failover drills: run one failure mode end to end, report, schedule"
    )
    drill_commands = drill.add_subparsers(dest="drill_command", required=True, parser_class=_Parser)
    drill_run = drill_commands.add_parser(
        "run", parents=[common], help="inject a failure mode, follow its playbook, fail back"
    )
    drill_run.add_argument("--mode", required=True, metavar="MODE", help="a playbook mode id")
    drill_run.add_argument(
        "--region", required=True, metavar="REGION", help="the region the fault is in"
    )
    drill_run.add_argument(
        "--to", dest="target", metavar="REGION",
        help="the region to move traffic to (default: the first healthy other region)",
    )  # fmt: skip
    drill_run.add_argument("--reason", required=True, metavar="TEXT", help="why (audit log)")
    drill_run.add_argument(
        "--yes", action="store_true", help="do not ask for the typed confirmations"
    )
    drill_report = drill_commands.add_parser(
        "report", parents=[common], help="the last drill's report"
    )
    drill_report.add_argument("--json", action="store_true", help="print the JSON report")
    drill_schedule = drill_commands.add_parser(
        "schedule", parents=[common], help="when the next drill is due, and which mode"
    )
    drill_schedule.add_argument("--json", action="store_true", help="print JSON")

    config = commands.add_parser("config", help="example and effective configuration")
    config_commands = config.add_subparsers(
        dest="config_command", required=True, parser_class=_Parser
    )
    config_commands.add_parser("example", help="print a commented sample configuration")
    config_commands.add_parser("show", parents=[common], help="effective configuration and sources")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < seconds < 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds: {text!r}")
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Options the subcommand does not know surface here, at the top parser.
        if args.command == "check":
            print(plugin_text(f"NOC UNKNOWN - usage: unrecognized arguments: {' '.join(extra)}"))
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handlers: dict[str | None, Callable[[argparse.Namespace], int]] = {
        None: _run_dashboard,
        "demo": _run_demo,
        "check": _check,
        "agent": _agent,
        **{kind.value: _action for kind in ActionKind},
        "ack-cooldown": _ack_cooldown,
        "recover": _recover,
        "sync": _sync,
        "audit": _audit,
        "maintenance": _maintenance,
        "config": _config,
        "serve": _serve,
        "drill": _drill,
    }
    try:
        status = handlers[args.command](args)
        sys.stdout.flush()  # here, so a closed pipe is caught below, not at exit
        return status
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"noc: config error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except RecordNotWritten as exc:
        # Nothing is reported done that is not on disk. An action may have changed
        # something before the record failed, so it reports "failed or partial".
        print(f"noc: {exc}", file=sys.stderr)
        print("noc: check `noc audit` and the estate before acting again", file=sys.stderr)
        return 2 if args.command in _MUTATING else 1
    except BrokenPipeError:
        _stdout_to_devnull()
        return 1
    except KeyboardInterrupt:
        # Outside the event loop (loading the config, printing): an act that changed
        # something returns its own code from the loop, so here nothing was changed.
        if args.command in _MUTATING:
            print(f"noc {args.command}: interrupted: nothing was changed", file=sys.stderr)
            return EXIT_NOTHING_CHANGED
        return EXIT_INTERRUPTED


# The commands that change the estate: a record that cannot be written ends them with 2;
# an interrupt outside their event loop has changed nothing.
_MUTATING = frozenset(
    {
        *(kind.value for kind in ActionKind),
        "ack-cooldown",
        "recover",
        "sync",
        "maintenance",
        "drill",
    }
)


def _stdout_to_devnull() -> None:
    """The reader went away (`noc check | head -1`): as the Python docs advise for
    SIGPIPE, point stdout at /dev/null so the final flush at exit cannot raise
    again and print a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _load(args: argparse.Namespace, *, state: bool = True) -> LoadedConfig:
    """The configuration; with `state`, the estate's state dir is made ready too
    (and the old shared layout moved into it, once, with a notice on stderr)."""
    loaded = load_config(getattr(args, "config", None))
    if state:
        _prepare(estate_paths(loaded.config))
    return loaded


def _prepare(paths: EstatePaths, *, adopt_legacy: bool = True) -> list[str]:
    try:
        notices = prepare_state(paths, adopt_legacy=adopt_legacy)
    except OSError as exc:
        raise RecordNotWritten(
            paths.directory, f"the state directory is unusable: {exc.strerror or exc}"
        ) from exc
    for notice in notices:
        print(f"noc: {notice}", file=sys.stderr)
    return notices


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """noc.log is as private as the journals (0600), every rotated file included:
    a log line can name a store, a region or an operator."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # a file created by an older noc was 0644
        return os.fdopen(fd, self.mode, encoding=self.encoding, errors=self.errors)


class _MaskingFormatter(logging.Formatter):
    """The last line of defence: a URL credential in any log line or traceback (an
    exception's message may quote a URL) never reaches noc.log."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def _log_to_file(paths: EstatePaths, notices: Sequence[str] = ()) -> None:
    """The dashboard owns the terminal: logs go to a bounded file in the estate's dir."""
    handler = _PrivateRotatingFileHandler(paths.log, maxBytes=1_000_000, backupCount=3)
    for backup in paths.directory.glob(f"{paths.log.name}.*"):
        with contextlib.suppress(OSError):
            backup.chmod(0o600)
    handler.setFormatter(_MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # One INFO line per probe, with the URL (and any credential in it), is not a log.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    for notice in notices:
        logging.getLogger("noc").warning("%s", notice)


def _with_display_flags(config: NocConfig, args: argparse.Namespace) -> tuple[NocConfig, bool]:
    """The configuration with the display flags applied, and whether it is read-only."""
    ui = apply_display_flags(config.ui, args)
    return config.model_copy(update={"ui": ui}), is_read_only(ui, args)


def _run_dashboard(args: argparse.Namespace) -> int:
    loaded = load_config(getattr(args, "config", None))
    from noc.app import NocApp

    paths = estate_paths(loaded.config)
    _log_to_file(paths, _prepare(paths))
    config, read_only = _with_display_flags(loaded.config, args)
    shared = None
    if config.control is not None and not args.standalone:
        from noc.control import SharedReader

        # Attached: the agents' shared verdicts, no probes of its own; acks and
        # silences go to the leading agent, and traffic moves only from a process with
        # a view of its own (`noc --standalone`, the CLI): see NocApp.may_run.
        shared = SharedReader(config, config.control, SystemClock())
    app = NocApp(
        config,
        read_only=read_only,
        config_path=str(loaded.path),
        state_path=paths.directory,
        shared=shared,
    )
    app.run()
    # 1 after an unhandled error, so a supervisor's restart-on-failure restarts it.
    return app.return_code or 0


def _run_demo(args: argparse.Namespace) -> int:
    from noc.app import NocApp
    from noc.simulator import DemoEstate, RedisUnavailable
    from noc.simulator.threaded import ThreadedDemo

    # The demo keeps its own record (`noc audit --demo`), never an estate's, and never
    # takes over the old shared layout's files: they belong to a real estate.
    paths = demo_paths()
    _log_to_file(paths, _prepare(paths, adopt_legacy=False))
    # The demo CA and its SMTP and MTA-STS certificates, made anew at each start.
    demo = ThreadedDemo(DemoEstate(certificate_dir=paths.directory))
    try:
        config = demo.start()
    except RedisUnavailable as exc:
        print(f"noc demo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config, read_only = _with_display_flags(config, args)
        app = NocApp(
            config,
            read_only=read_only,
            faults=demo,
            config_path="demo estate",
            state_path=paths.directory,
        )
        app.run()
    finally:
        demo.stop()
    return app.return_code or 0


def _serve(args: argparse.Namespace) -> int:
    from noc.serve import serve

    return serve(args)


def _collect(loaded: LoadedConfig, timeout: float | None = None) -> Any:
    """One collection round's snapshot; TimeoutError when it takes over `timeout`."""
    _import_httpcore_alone()
    from noc.scheduler import Scheduler

    async def once() -> Any:
        scheduler = Scheduler(loaded.config, SystemClock(), single_round=True)
        try:
            async with asyncio.timeout(timeout):
                await scheduler.collect_once()
            return scheduler.engine.snapshot()
        finally:
            await scheduler.stop()

    return asyncio.run(once())


def _import_httpcore_alone() -> None:
    """httpcore (which carries a single round's probes) imports trio and h2 whenever
    they are installed, to run under trio's event loop and speak HTTP/2: ~55 ms of a
    `noc check`, which runs on asyncio's loop and probes over HTTP/1.1. Hidden for that
    one import (httpcore expects either to be missing), both stay importable after."""
    hidden = [name for name in ("trio", "h2") if name not in sys.modules]
    if "httpcore" in sys.modules or not hidden:
        return
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import httpcore  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]


class _NoSharedState(Exception):
    """The control plane cannot say anything: unreachable, or no agent has reported."""


def _read_shared(config: NocConfig, control: ControlConfig, timeout: float | None) -> Any:
    """The agents' shared verdicts (one read of the control plane), merged by quorum."""
    from redis.exceptions import RedisError

    from noc.control import SharedReader

    async def read() -> Any:
        reader = SharedReader(config, control, SystemClock())
        try:
            async with asyncio.timeout(timeout):
                snapshot = await reader.read()
        except (RedisError, OSError) as exc:
            raise _NoSharedState(
                f"control plane unreachable: {mask_secrets(str(exc))} "
                "(--standalone probes from here)"
            ) from exc
        finally:
            await reader.aclose()
        if snapshot is None:
            raise _NoSharedState(
                "no vantage has reported to the control plane: is a `noc agent` running? "
                "(--standalone probes from here)"
            )
        return snapshot

    return asyncio.run(read())


def _agent(args: argparse.Namespace) -> int:
    """Systemd-friendly: logs to stderr, 0 on SIGTERM, 3 on a configuration error."""
    loaded = load_config(getattr(args, "config", None))
    control = loaded.config.control
    problems = []
    if control is None:
        problems.append(f"{loaded.path}: noc agent needs [control] with redis_url or sentinels")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", args.vantage):
        problems.append(f"--vantage {args.vantage!r}: use 1 to 64 letters, digits, '.', '_' or '-'")
    if problems:
        raise ConfigError(problems)
    assert control is not None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_MaskingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from noc.agent import run_agent

    return asyncio.run(run_agent(loaded.config, control, args.vantage, SystemClock()))


def _check(args: argparse.Namespace) -> int:
    try:
        # A check leaves no state behind: no directory made, nothing moved.
        loaded = _load(args, state=False)
    except ConfigError as exc:
        # A Nagios plugin prints its verdict first, even when it cannot run.
        print(plugin_text(f"NOC UNKNOWN - config error: {exc.problems[0]}"))
        for problem in exc.problems:
            print(f"noc: config error: {problem}", file=sys.stderr)
        return Status.UNKNOWN
    control = loaded.config.control
    try:
        if control is not None and not getattr(args, "standalone", False):
            snapshot = _read_shared(loaded.config, control, args.timeout)
        else:
            snapshot = _collect(loaded, args.timeout)
    except TimeoutError:
        print(f"NOC UNKNOWN - no verdict within {args.timeout:g} s (-t/--timeout)")
        return Status.UNKNOWN
    except _NoSharedState as exc:
        print(plugin_text(f"NOC UNKNOWN - {exc}"))
        return Status.UNKNOWN
    status = verdict(snapshot).status
    try:
        if args.json:
            print(json.dumps(report_json(snapshot, loaded.config.alerts.group_by), indent=2))
        else:
            config = loaded.config
            limits = PerfLimits(
                config.suppression.slo_seconds,
                config.deliverability.complaint_warn_rate,
                config.deliverability.complaint_critical_rate,
                config.health.cert_warn_days,
                config.health.cert_crit_days,
                {
                    region.id: QueueLimits(
                        region.mta.queue_depth_threshold,
                        region.mta.oldest_deferred_threshold_seconds,
                        region.mta.rejections_per_minute_threshold,
                    )
                    for region in config.regions
                    if region.mta is not None
                },
            )
            print(report_text(snapshot, limits))
        sys.stdout.flush()
    except BrokenPipeError:
        # `noc check | head -1` read its line: the verdict still stands.
        _stdout_to_devnull()
    return status


def _print_plan(plan: ActionPlan) -> None:
    print(
        f"{plan.kind.value}: {plan.source or 'unknown'} -> {plan.target}  (action {plan.action_id})"
    )
    print(f"  actuators: {' -> '.join(plan.actuators)}")
    for check in plan.checks:
        mark = "ok  " if check.ok else ("FAIL" if check.blocking else "warn")
        print(f"  [{mark}] {check.name}: {check.said_for(Interface.CLI)}")
    for store in plan.stores:
        state = "reachable" if store.reachable else f"unreachable ({store.error or 'not read'})"
        print(f"  store {store.region_id}: {state}; will be written")
    blast = plan.blast
    print("blast radius:")
    for change in blast.changes:
        left = f"; clients move within {change.remaining_ttl} s" if change.remaining_ttl else ""
        print(f"  dns {change.describe()}{left}")
    if "dns" not in plan.actuators:
        print("  dns: not changed (no dns actuator)")
    for ip, state in blast.sending_ips:
        print(f"  sending IP {ip}: {state}")
    print(f"  complaint rate of {plan.target}: {blast.complaint_headroom}")
    for risk in blast.data_at_risk:
        print(f"  data at risk: {risk.describe()}")
    if blast.unsynced_suppression:
        print(
            f"  suppression: {blast.unsynced_suppression} address(es) missing in {plan.target} "
            "would be mailed against their will"
        )
    if blast.queue_left_behind is not None:
        print(f"  mail queue: {blast.queue_left_behind}")


def _refuse_read_only(args: argparse.Namespace) -> bool:
    if getattr(args, "read_only", False):
        print(f"noc {args.command}: refused: --read-only was given", file=sys.stderr)
        return True
    return False


def _action(args: argparse.Namespace) -> int:
    if _refuse_read_only(args):
        return EXIT_USAGE
    from noc.operations import ActionRequest, Confirmation, OperatorIO

    loaded = _load(args)
    request = ActionRequest(
        ActionKind(args.command),
        args.to,
        operator_identity(),
        via="cli",
        force=args.force,
        dry_run=args.dry_run,
        reason=args.reason,
    )

    async def confirm(plan: ActionPlan) -> Confirmation | None:
        if args.yes:
            return Confirmation(args.reason, args.force, "--yes")
        if not await _confirm_on_terminal(plan):
            return None
        return Confirmation(args.reason, args.force, "typed")

    io = OperatorIO(
        confirm=confirm,
        show_plan=_print_plan,
        say=lambda text: print(f"  {text}", flush=True),
        executed=_print_steps,
        watching=_print_progress,
    )
    outcome = _run_operation(loaded.config, lambda ops: ops.run_action(request, io))
    _print_outcome(outcome)
    return outcome.exit_code


def _run_operation(
    config: NocConfig, act: Callable[[Operations], Coroutine[Any, Any, Outcome]]
) -> Outcome:
    """One act through the operations layer, on a one-round scheduler; Ctrl-C is the
    layer's to interpret (see noc.operations)."""
    from noc.operations import (
        Operations,
        Outcome,
        finish_first,
        mute_output,
        run_with_interrupts_as_cancel,
    )
    from noc.scheduler import Scheduler

    ended: list[Outcome] = []

    async def run() -> Outcome:
        clock = SystemClock()
        scheduler = Scheduler(config, clock, single_round=True)
        try:
            outcome = await act(
                Operations(config, scheduler, JsonlLog(default_audit_path(config), clock), clock)
            )
            ended.append(outcome)
            return outcome
        finally:
            # A second interrupt while closing must not lose how the act ended.
            await finish_first(scheduler.stop())

    try:
        outcome = run_with_interrupts_as_cancel(run())
    except (KeyboardInterrupt, asyncio.CancelledError):
        # After the act's own handling (the loop closing): its outcome stands.
        if ended:
            outcome = ended[0]
        else:
            outcome = Outcome(
                EXIT_NOTHING_CHANGED, "interrupted: nothing was changed", "interrupted"
            )
    # The outcome is known: a late interrupt must not turn printing it into a traceback.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, lambda *_: mute_output())
    return outcome


def _print_steps(result: ActionResult) -> None:
    for step in result.steps:
        print(f"  {step.actuator}: {'ok' if step.ok else 'FAILED'} {step.detail}")


def _print_outcome(outcome: Outcome) -> None:
    final = outcome.result
    if final is not None and outcome.stage in ("verified", "failed"):
        for store in final.stores:
            print(f"  {store.region_id}: {store.outcome.value} {store.detail}".rstrip())
        if final.timeline:
            print("  timeline: " + ", ".join(f"{event} {s:.1f} s" for event, s in final.timeline))
    for line in outcome.details:
        print(line)
    if outcome.stage in ("verified", "failed", "dry_run", "done", "nothing"):
        print(outcome.message)
    else:
        if final is not None:
            print(final.summary)
        print(outcome.message, file=sys.stderr)


def _print_progress(result: ActionResult) -> None:
    if result.propagation_text:
        print(f"  {result.propagation_text}", flush=True)


async def _read_answer(prompt: str) -> str | None:
    """One line typed on stdin, read without a thread (an interrupt ends the wait at
    once); None at end of input."""
    print(prompt, end="", flush=True)
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    got: asyncio.Future[bytes] = loop.create_future()
    buffer = bytearray()

    def readable() -> None:
        chunk = os.read(fd, 256)
        buffer.extend(chunk)
        if (not chunk or b"\n" in buffer or len(buffer) >= _MAX_ANSWER_BYTES) and not got.done():
            got.set_result(bytes(buffer) if buffer else b"")

    try:
        loop.add_reader(fd, readable)
    except (PermissionError, ValueError, OSError):
        # A regular file on stdin cannot be watched, and a read never blocks on it.
        line = sys.stdin.readline(_MAX_ANSWER_BYTES)
        return line or None
    try:
        data = await got
    finally:
        loop.remove_reader(fd)
    if not data:
        return None
    return data.decode("utf-8", "replace").partition("\n")[0]


async def _confirm_on_terminal(plan: ActionPlan) -> bool:
    typed = await _read_answer(f"Type the target region id ({plan.target}) to confirm: ")
    if typed is None or typed.strip() != plan.target:
        return False
    if plan.overridden:
        overridden = ", ".join(plan.overridden)
        typed = await _read_answer(f"Forced: overrides {overridden}. Type FORCE to proceed: ")
        return typed is not None and typed.strip() == "FORCE"
    return True


def _ack_cooldown(args: argparse.Namespace) -> int:
    if _refuse_read_only(args):
        return EXIT_USAGE
    loaded = _load(args)

    async def note(_: str) -> str:
        return str(args.reason)

    outcome = _run_operation(loaded.config, lambda ops: ops.ack_cooldown(operator_identity(), note))
    print(outcome.message)
    return outcome.exit_code


def _recover(args: argparse.Namespace) -> int:
    from noc.recovery import Decision

    if _refuse_read_only(args):
        return EXIT_USAGE
    loaded = _load(args)

    async def choose(item: Interrupted, options: RecoveryOptions) -> Decision | None:
        default = args.choice or options.recommended
        if args.yes:
            return Decision(default, args.force, args.reason)
        typed = await _read_answer(
            f"Type complete, roll_back or close to settle {item.action_id} (recommended: "
            f"{default.value}): "
        )
        try:
            choice = Choice((typed or "").strip().replace("-", "_").replace(" ", "_"))
        except ValueError:
            return None
        force = False
        if choice is not Choice.CLOSE and options.needs_force(choice) and args.force:
            failed = ", ".join(r.name for r in options.failed(choice))
            typed = await _read_answer(f"Forced: overrides {failed}. Type FORCE to proceed: ")
            if typed is None or typed.strip() != "FORCE":
                return None
            force = True
        return Decision(choice, force, args.reason)

    async def reassert(split: FlagSplit) -> bool:
        if args.yes:
            return True
        typed = await _read_answer(
            f"Type {split.flag.active} to re-assert its flag on {', '.join(split.behind)}: "
        )
        return typed is not None and typed.strip() == split.flag.active

    outcome = _run_operation(
        loaded.config,
        lambda ops: ops.recover(
            operator_identity(), choose, reassert, dry_run=args.dry_run,
            say=lambda text: print(text, flush=True), interface=Interface.CLI,
        ),
    )  # fmt: skip
    print(outcome.message, file=sys.stdout if outcome.exit_code == 0 else sys.stderr)
    return outcome.exit_code


def _sync(args: argparse.Namespace) -> int:
    if _refuse_read_only(args):
        return EXIT_USAGE
    loaded = _load(args)
    outcome = _run_operation(
        loaded.config,
        lambda ops: ops.sync(args.source, args.target, operator_identity(), args.lists),
    )
    if outcome.exit_code == EXIT_USAGE:
        print(outcome.message, file=sys.stderr)
        return EXIT_USAGE
    for line in outcome.details:
        print(line)
    print(outcome.message)
    return outcome.exit_code


def _maintenance(args: argparse.Namespace) -> int:
    from noc.maintenance import (
        MaintenanceError,
        MaintenanceStore,
        describe,
        parse_duration,
        parse_start,
        window_json,
    )

    if args.maintenance_command == "list":
        loaded = _load(args, state=False)
        clock = SystemClock()
        store = MaintenanceStore(estate_paths(loaded.config).maintenance, clock)
        store.reload()
        now = clock.utcnow()
        windows = store.book.listing(now)
        if args.json:
            shown = [{**window_json(w), "state": w.state(now)} for w in windows]
            print(json.dumps(shown, indent=2))
        elif not windows:
            print(f"no maintenance windows ({store.path})")
        for window in windows if not args.json else ():
            print(describe(window, now))
        return 0
    if _refuse_read_only(args):
        return EXIT_USAGE
    loaded = _load(args)
    if args.maintenance_command == "add":
        try:
            duration = parse_duration(args.duration)
            starts_at = parse_start(args.at, SystemClock().utcnow()) if args.at else None
        except MaintenanceError as exc:
            print(f"noc maintenance add: {exc}", file=sys.stderr)
            return EXIT_USAGE
        outcome = _run_operation(
            loaded.config,
            lambda ops: ops.add_maintenance(
                args.region, duration, args.reason, operator_identity(), starts_at=starts_at
            ),
        )
    else:
        outcome = _run_operation(
            loaded.config, lambda ops: ops.end_maintenance(args.id, operator_identity())
        )
    print(outcome.message, file=sys.stdout if outcome.exit_code == 0 else sys.stderr)
    return outcome.exit_code


def _audit(args: argparse.Namespace) -> int:
    path = demo_paths().audit if args.demo else default_audit_path(_load(args).config)
    read = read_jsonl(path)
    records = read.records[-args.limit :] if args.limit > 0 else read.records
    for line in read.damaged_lines:
        print(f"noc: {path}: line {line} is damaged (torn write?) and was skipped", file=sys.stderr)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    if not records:
        print(f"no audit records yet ({path})")
    for record in records:
        print("\n".join(audit_lines(record)))
    return 0


# Fields that say how an act ended, in the order they are looked for.
_OUTCOME_FIELDS = ("summary", "refusal", "aborted", "propagation", "detail")


def audit_lines(record: Mapping[str, Any]) -> list[str]:
    """One record as an operator reads it: the event, then why, who from where, how
    it ended and how long each step took; a dry run says so first."""
    event = str(record.get("event", "?"))
    if record.get("dry_run"):
        event = f"DRY RUN {event}"
    target = f"{record.get('from') or '?'} -> {record.get('to') or '?'}"
    if "to" not in record:
        target = str(record.get("summary", ""))
    lines = [
        f"{record.get('ts', '?')}  {event:<13} {record.get('action', ''):<8} {target}  "
        f"{record.get('operator', '')}".rstrip()
    ]
    for said in ("reason", "note"):
        if record.get(said):
            lines.append(f"    {said}: {record[said]}")
    origin = [str(record["operator"])] if record.get("operator") else []
    if record.get("ssh_client"):
        origin.append(f"over SSH from {record['ssh_client']}")
    if record.get("via"):
        origin.append(f"via {record['via']}")
    if record.get("automated"):
        origin.append("(automated)")
    if len(origin) > 1:  # the operator alone is on the first line already
        lines.append(f"    origin: {' '.join(origin)}")
    outcome = next((record[f] for f in _OUTCOME_FIELDS if record.get(f)), None)
    if outcome is not None and str(outcome) != target:
        lines.append(f"    outcome: {outcome}")
    if record.get("forced"):
        overridden = ", ".join(record.get("overridden") or []) or "its rules"
        lines.append(f"    BROKE GLASS over {overridden}")
    timeline = record.get("timeline")
    if isinstance(timeline, Mapping) and timeline:
        steps = ", ".join(f"{step} {float(at):.1f} s" for step, at in timeline.items())
        lines.append(f"    timeline: {steps}")
    return lines


def _config(args: argparse.Namespace) -> int:
    if args.config_command == "example":
        print(EXAMPLE, end="")
        return 0
    loaded = _load(args, state=False)
    print(f"# effective configuration from {loaded.path} (environment overrides the file)")
    for key, value, source in effective_values(loaded):
        print(f"{key} = {json.dumps(value)}  # {source}")
    for note in preset_overrides(loaded):
        print(f"# note: {note}")
    return 0


def _drill(args: argparse.Namespace) -> int:
    from noc.drill_schedule import drill_history, next_drill
    from noc.drills import Drill, DrillError, DrillIO, DrillRequest, report_markdown
    from noc.playbook import PlaybookError, load_playbook

    loaded = _load(args)
    config = loaded.config
    paths = estate_paths(config)
    try:
        playbook = load_playbook(config.drills.playbook)
    except PlaybookError as exc:
        print(f"noc drill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.drill_command == "report":
        history = drill_history(paths.directory)
        if not history:
            print("noc drill report: no drill has been run yet", file=sys.stderr)
            return EXIT_NOTHING_CHANGED
        last = history[-1]
        print(json.dumps(last, indent=2) if args.json else report_markdown(last), end="\n")
        return 0
    if args.drill_command == "schedule":
        drills = config.drills
        due = next_drill(
            playbook,
            drill_history(paths.directory),
            SystemClock().utcnow().date(),
            onboarded=drills.onboarded,
            interval_days=drills.interval_days,
            first_within_days=drills.first_within_days,
        )
        if args.json:
            print(json.dumps({"mode": due.mode, "due": due.due.isoformat(),
                              "overdue": due.overdue, "last": due.last}))  # fmt: skip
        else:
            print(due.text())
        return 0
    if _refuse_read_only(args):
        return EXIT_USAGE
    from noc.operations import Confirmation
    from noc.scheduler import Scheduler

    async def confirm(plan: ActionPlan) -> Confirmation | None:
        if args.yes:
            return Confirmation(args.reason, False, "--yes")
        if not await _confirm_on_terminal(plan):
            return None
        return Confirmation(args.reason, False, "typed")

    async def ask(prompt: str) -> str | None:
        if args.yes:
            return ""
        return await _read_answer(prompt)

    io = DrillIO(say=lambda text: print(f"  {text}", flush=True), ask=ask, confirm=confirm)
    request = DrillRequest(
        args.mode, args.region, args.reason, operator_identity(), args.target, args.yes
    )

    async def run() -> dict[str, Any]:
        clock = SystemClock()
        scheduler = Scheduler(config, clock, state_dir=paths.directory)
        audit = JsonlLog(paths.audit, clock)
        drill = Drill(config, playbook, scheduler, audit, clock, paths.directory, io)
        return await drill.run(request)

    from noc.operations import run_with_interrupts_as_cancel

    try:
        report = run_with_interrupts_as_cancel(run())
    except (DrillError, PlaybookError) as exc:
        print(f"noc drill: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, asyncio.CancelledError):
        # The drill's own handling has run: the fault taken away, the record written.
        print("noc drill: interrupted: see `noc audit` for where traffic is", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(report_markdown(report), end="")
    return 0 if report["met"] else 2
