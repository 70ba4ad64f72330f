"""The `noc` command. Exit codes are public interface (see README)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import logging.handlers
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from noc.audit import JsonlLog, default_audit_path, operator_identity, read_jsonl, state_dir
from noc.check import Status, report_json, report_text, verdict
from noc.clock import SystemClock
from noc.config import (
    EXAMPLE,
    ConfigError,
    LoadedConfig,
    NocConfig,
    effective_values,
    load_config,
)
from noc.failover import (
    ack_cooldown,
    execute,
    gather_facts,
    plan_action,
    plan_record,
    reconfirm,
    verify,
)
from noc.model import ActionKind, ActionPlan, ActionResult
from noc.safety import replication_drained
from noc.scheduler import Scheduler
from noc.sync import SyncError, audit_sync, sync_now, sync_ok, sync_summary
from noc.ui_settings import add_display_flags, apply_display_flags, is_read_only

EXIT_USAGE = 3
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 3: UNKNOWN for a Nagios plugin, "usage" for failover."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


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
    add_display_flags(parser)
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    demo = commands.add_parser("demo", help="run the dashboard on a simulated three-region estate")
    demo.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS)
    add_display_flags(demo, default=argparse.SUPPRESS)

    check = commands.add_parser(
        "check", parents=[common], help="one collection round, Nagios-style"
    )
    check.add_argument("--json", action="store_true", help="print JSON instead of text")

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

    audit = commands.add_parser("audit", help="show the audit log")
    audit.add_argument("--json", action="store_true", help="print the records as a JSON array")
    audit.add_argument("--limit", type=int, default=0, metavar="N", help="only the last N records")

    config = commands.add_parser("config", help="example and effective configuration")
    config_commands = config.add_subparsers(
        dest="config_command", required=True, parser_class=_Parser
    )
    config_commands.add_parser("example", help="print a commented sample configuration")
    config_commands.add_parser("show", parents=[common], help="effective configuration and sources")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers: dict[str | None, Callable[[argparse.Namespace], int]] = {
        None: _run_dashboard,
        "demo": _run_demo,
        "check": _check,
        **{kind.value: _action for kind in ActionKind},
        "ack-cooldown": _ack_cooldown,
        "sync": _sync,
        "audit": _audit,
        "config": _config,
        "serve": _serve,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"noc: config error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _load(args: argparse.Namespace) -> LoadedConfig:
    return load_config(getattr(args, "config", None))


def _log_to_file() -> None:
    """The dashboard owns the terminal: logs go to a bounded file in the state dir."""
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        directory / "noc.log", maxBytes=1_000_000, backupCount=3
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def _with_display_flags(config: NocConfig, args: argparse.Namespace) -> tuple[NocConfig, bool]:
    """The configuration with the display flags applied, and whether it is read-only."""
    ui = apply_display_flags(config.ui, args)
    return config.model_copy(update={"ui": ui}), is_read_only(ui, args)


def _run_dashboard(args: argparse.Namespace) -> int:
    loaded = _load(args)
    from noc.app import NocApp

    _log_to_file()
    config, read_only = _with_display_flags(loaded.config, args)
    app = NocApp(config, read_only=read_only, config_path=str(loaded.path))
    app.run()
    # 1 after an unhandled error, so a supervisor's restart-on-failure restarts it.
    return app.return_code or 0


def _run_demo(args: argparse.Namespace) -> int:
    from noc.app import NocApp
    from noc.simulator import RedisUnavailable
    from noc.simulator.threaded import ThreadedDemo

    _log_to_file()
    demo = ThreadedDemo()
    try:
        config = demo.start()
    except RedisUnavailable as exc:
        print(f"noc demo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        config, read_only = _with_display_flags(config, args)
        app = NocApp(config, read_only=read_only, faults=demo, config_path="demo estate")
        app.run()
    finally:
        demo.stop()
    return app.return_code or 0


def _serve(args: argparse.Namespace) -> int:
    from noc.serve import serve

    return serve(args)


def _collect(loaded: LoadedConfig) -> Any:
    async def once() -> Any:
        scheduler = Scheduler(loaded.config, SystemClock(), single_round=True)
        try:
            await scheduler.collect_once()
            return scheduler.engine.snapshot()
        finally:
            await scheduler.stop()

    return asyncio.run(once())


def _check(args: argparse.Namespace) -> int:
    try:
        loaded = _load(args)
    except ConfigError as exc:
        # A Nagios plugin prints its verdict first, even when it cannot run.
        print(f"NOC UNKNOWN - config error: {exc.problems[0]}")
        for problem in exc.problems:
            print(f"noc: config error: {problem}", file=sys.stderr)
        return Status.UNKNOWN
    snapshot = _collect(loaded)
    if args.json:
        print(json.dumps(report_json(snapshot), indent=2))
    else:
        print(report_text(snapshot))
    return verdict(snapshot).status


def _print_plan(plan: ActionPlan) -> None:
    print(
        f"{plan.kind.value}: {plan.source or 'unknown'} -> {plan.target}  (action {plan.action_id})"
    )
    print(f"  actuators: {' -> '.join(plan.actuators)}")
    for check in plan.checks:
        mark = "ok  " if check.ok else ("FAIL" if check.blocking else "warn")
        print(f"  [{mark}] {check.name}: {check.detail}")
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


def _refuse_read_only(args: argparse.Namespace) -> bool:
    if getattr(args, "read_only", False):
        print(f"noc {args.command}: refused: --read-only was given", file=sys.stderr)
        return True
    return False


def _action(args: argparse.Namespace) -> int:
    if _refuse_read_only(args):
        return EXIT_USAGE
    loaded = _load(args)
    try:
        return asyncio.run(_run_action(args, loaded.config))
    except KeyboardInterrupt:
        # Never during execute (see _interrupts_deferred): before it, or while watching DNS.
        print("\ninterrupted: see noc audit for what was done", file=sys.stderr)
        return 1


async def _run_action(args: argparse.Namespace, config: NocConfig) -> int:
    kind = ActionKind(args.command)
    clock = SystemClock()
    audit = JsonlLog(default_audit_path(), clock)
    scheduler = Scheduler(config, clock, single_round=True)
    try:
        await scheduler.collect_once()
        facts = await gather_facts(config, scheduler.actuators, kind)
        plan = plan_action(
            scheduler.engine.snapshot(),
            config,
            kind,
            args.to,
            operator_identity(),
            facts,
            force=args.force,
        )
        _print_plan(plan)
        await audit.aappend(
            "planned", **plan_record(plan, reason=args.reason, dry_run=args.dry_run, via="cli")
        )
        if not plan.allowed:
            hint = " (--force breaks glass, and is recorded)" if plan.needs_force else ""
            print(f"refused: {plan.refusal}{hint}", file=sys.stderr)
            await audit.aappend(
                "refused", **plan_record(plan, reason=args.reason, refusal=plan.refusal)
            )
            return 1
        if args.dry_run:
            print("dry run: nothing was changed")
            return 0
        if not args.yes and not await asyncio.to_thread(_confirm_on_terminal, plan):
            print("cancelled: nothing was changed", file=sys.stderr)
            await audit.aappend("cancelled", **plan_record(plan, reason=args.reason))
            return 1
        confirmation = "--yes" if args.yes else "typed"
        await audit.aappend(
            "confirmed", **plan_record(plan, reason=args.reason, confirmation=confirmation)
        )
        confirmed_at = clock.monotonic()
        if kind is ActionKind.SWITCHOVER:
            stopped = await _wait_for_drain(scheduler, config, plan)
            if stopped is None:
                # Minutes may have passed: decide again on fresh facts.
                await scheduler.collect_once()
                facts = await gather_facts(config, scheduler.actuators, kind)
                fresh = plan_action(
                    scheduler.engine.snapshot(), config, kind, args.to, operator_identity(),
                    facts, force=args.force,
                )  # fmt: skip
                plan, refusal = reconfirm(plan, fresh)
                if refusal is not None:
                    stopped = f"refused on a fresh preflight after the wait: {refusal}"
            if stopped is not None:
                print(f"switchover stopped: {stopped}; nothing was changed", file=sys.stderr)
                await audit.aappend("cancelled", **plan_record(plan, reason=stopped))
                return 1
        with _interrupts_deferred() as interrupted:
            result = await execute(
                plan, args.reason, scheduler.actuators, audit, clock, confirmed_at=confirmed_at
            )
        for step in result.steps:
            print(f"  {step.actuator}: {'ok' if step.ok else 'FAILED'} {step.detail}")
        if interrupted:
            # Honoured now the change is finished and audited: no DNS watch, no post hook.
            print(result.summary)
            print("interrupted: the change was finished and audited; DNS was not watched",
                  file=sys.stderr)  # fmt: skip
            return EXIT_INTERRUPTED
        if result.aborted is None and plan.blast.changes:
            print("watching DNS until every server serves the new answers or the TTL passes…")
        final = await verify(
            result,
            scheduler.actuators,
            audit,
            clock,
            reason=args.reason,
            confirmed_at=confirmed_at,
            on_progress=_print_progress,
        )
    finally:
        await scheduler.stop()
    for store in final.stores:
        print(f"  {store.region_id}: {store.outcome.value} {store.detail}".rstrip())
    if final.timeline:
        print("  timeline: " + ", ".join(f"{event} {s:.1f} s" for event, s in final.timeline))
    print(final.summary)
    if final.aborted is not None:
        return 1
    return 0 if final.success else 2


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[list[bool]]:
    """While a change is applied, Ctrl-C is noted, not acted on: writes that have begun
    finish, are read back or rolled back, and audited. Yields a list that holds True
    once an interrupt came."""
    loop = asyncio.get_running_loop()
    before = signal.getsignal(signal.SIGINT)
    noted: list[bool] = []

    def note() -> None:
        if not noted:
            print("\nnoc: the change is in flight: it finishes and is audited, then noc stops",
                  file=sys.stderr)  # fmt: skip
        noted.append(True)

    loop.add_signal_handler(signal.SIGINT, note)
    try:
        yield noted
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, before)


def _print_progress(result: ActionResult) -> None:
    if result.propagation_text:
        print(f"  {result.propagation_text}")


async def _wait_for_drain(scheduler: Scheduler, config: NocConfig, plan: ActionPlan) -> str | None:
    """Poll until replication toward the target has drained; None, or why it stopped."""
    deadline = scheduler.clock.monotonic() + config.failover.drain_timeout_seconds
    while True:
        drained, detail = replication_drained(scheduler.engine.snapshot(), plan.source, plan.target)
        print(f"  switchover: {detail}")
        if drained:
            return None
        if scheduler.clock.monotonic() >= deadline:
            return f"lag did not drain within {config.failover.drain_timeout_seconds:g} s"
        await asyncio.sleep(1.0)
        await scheduler.poll_replication()


def _ack_cooldown(args: argparse.Namespace) -> int:
    if _refuse_read_only(args):
        return EXIT_USAGE
    loaded = _load(args)

    async def run() -> tuple[bool, str]:
        clock = SystemClock()
        scheduler = Scheduler(loaded.config, clock, single_round=True)
        try:
            await scheduler.collect_once()
            return await ack_cooldown(
                scheduler.engine.snapshot(),
                scheduler.stores,
                JsonlLog(default_audit_path(), clock),
                clock,
                operator_identity(),
                args.reason,
            )
        finally:
            await scheduler.stop()

    cleared, text = asyncio.run(run())
    print(text)
    return 0 if cleared else 2


def _confirm_on_terminal(plan: ActionPlan) -> bool:
    try:
        typed = input(f"Type the target region id ({plan.target}) to confirm: ").strip()
        if typed != plan.target:
            return False
        if plan.overridden:
            overridden = ", ".join(plan.overridden)
            return (
                input(f"Forced: overrides {overridden}. Type FORCE to proceed: ").strip() == "FORCE"
            )
        return True
    except EOFError:
        return False


def _sync(args: argparse.Namespace) -> int:
    if _refuse_read_only(args):
        return EXIT_USAGE
    loaded = _load(args)
    clock = SystemClock()
    try:
        results = asyncio.run(sync_now(loaded.config, args.source, args.target, clock, args.lists))
    except SyncError as exc:
        print(f"noc sync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    audit = JsonlLog(default_audit_path(), clock)
    asyncio.run(audit_sync(audit, operator_identity(), args.source, args.target, results))
    for result in results:
        problems = "; ".join(result.errors) + (" (capped: run again)" if result.truncated else "")
        print(
            f"  {result.list}: {result.missing} missing of {result.examined} recent, "
            f"{result.copied} copied {problems}".rstrip()
        )
    print(sync_summary(args.source, args.target, results))
    return 0 if sync_ok(results) else 2


def _audit(args: argparse.Namespace) -> int:
    path = default_audit_path()
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
        target = f"{record.get('from') or '?'} -> {record.get('to') or '?'}"
        if "to" not in record:
            target = record.get("summary", "")
        print(
            f"{record.get('ts', '?')}  {record.get('event', '?'):<13} "
            f"{record.get('action', ''):<8} {target}  {record.get('operator', '')}"
        )
    return 0


def _config(args: argparse.Namespace) -> int:
    if args.config_command == "example":
        print(EXAMPLE, end="")
        return 0
    loaded = _load(args)
    print(f"# effective configuration from {loaded.path} (environment overrides the file)")
    for key, value, source in effective_values(loaded):
        print(f"{key} = {json.dumps(value)}  # {source}")
    return 0
