"""Soak: the real dashboard (`noc demo`) on a pty for N minutes of random operator acts.

Every fault of the demo's fault panel is injected at random through the real
keys (`x`, then the panel's list), with failovers (`f`) and failbacks (`b`)
confirmed by typing the target id and a reason, acks (`a`) of whatever alert is
selected, silences (`s`), view and detail keys, refreshes; between them the
dashboard is quit (`q`) and started again, or killed with SIGKILL and started
again, on the same state directory (a temporary XDG_STATE_HOME this bench owns,
so no real estate's state is read or written; files are found under it by glob,
whatever layout noc uses inside it).

The first lifetime is long (half the run), so memory is measured over one process
as well as across restarts. An anchor runs beside it for the same time: a quiet
`noc demo` (no acts) on its own pty and state directory, and the RSS of a bare
`import textual, noc.app`.

It prints what it measured, nothing inferred:
- crashes: a dashboard that exited without being asked, printed a traceback, or
  exited non-zero after `q` (must be 0);
- logged exceptions: "Traceback" and ERROR lines in the noc.log files (must be 0);
- RSS of the dashboard process after warm-up and at the end of each lifetime,
  and for the long lifetime the warm and the end figures (flat: within 10 %);
- alert episodes (firing transitions in the alert journal) and pages sent: the
  demo configures no notification channel, so pages are "n/a" unless an outbox
  file exists;
- the acts attempted and those the screen confirmed (a dialog that opened, a
  "demo: <region> now <fault>" notice), per kind.

    python bench/soak.py [--minutes 30] [--seed N] [--warmup 60]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ptyproc import PtyProcess

SIZE = (120, 40)
START_TIMEOUT = 90.0
# Kept of the pty output between acts: enough for a traceback and a dialog's title.
OUTPUT_TAIL_BYTES = 256 * 1024
FAULTS = (  # the fault panel's order (widgets/fault_panel.py FAULT_TEXT)
    "down", "slow", "flap", "garbage", "break_replication", "stall_sync",
    "complaint_spike", "dns_hijack", "blocklist", "restore",
)  # fmt: skip
REGIONS = ("ro", "bg", "pa")  # the demo's regions, in the panel's order
PRIMARY = "ro"
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception|Key|Matches|Interrupt)\b")
ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def plain(data: bytes) -> str:
    return ANSI.sub(b"", data).decode("utf-8", "replace")


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def mib(kib: int | None) -> str:
    return "   n/a" if kib is None else f"{kib / 1024:6.1f}"


class Dashboard:
    """One `noc demo` process on a pty, driven by keys; its output is read continuously
    (a terminal nobody reads would block it) and only a bounded tail is kept."""

    def __init__(self, state_home: Path) -> None:
        env = dict(os.environ, XDG_STATE_HOME=str(state_home))
        self.process = PtyProcess.spawn([sys.executable, "-m", "noc", "demo"], size=SIZE, env=env)
        self.tracebacks: list[str] = []
        self.children: set[int] = set()
        self.exit_code: int | None = None
        self.trimmed = 0  # bytes dropped from the front of process.output so far

    @property
    def pid(self) -> int:
        return self.process.pid

    def pump(self, seconds: float) -> None:
        """Read for `seconds`, noting any traceback, then trim what is kept."""
        output = self.process.output
        mark = max(0, len(output) - 64)  # a word split across two reads is still found
        self.process.read_for(seconds)
        fresh = plain(bytes(output[mark:]))
        if "Traceback (most recent call last)" in fresh:
            self.tracebacks.append(fresh[fresh.index("Traceback") :])
        elif self.tracebacks:  # the rest of one being printed
            self.tracebacks[-1] += fresh
        if len(output) > OUTPUT_TAIL_BYTES:
            dropped = len(output) - OUTPUT_TAIL_BYTES
            del output[:dropped]
            self.trimmed += dropped
        self.note_children()

    def note_children(self) -> None:
        """The demo's redis-servers: a SIGKILL orphans them, and the bench ends them."""
        with contextlib.suppress(OSError):
            self.children.update(self.process.children())

    def start(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while b"LIVE" not in self.process.output and time.monotonic() < deadline:
            self.process.read_until(b"LIVE", 1.0)
            self.note_children()  # a start that dies still leaves its servers
            if not self.alive():
                break
        drawn = b"LIVE" in self.process.output
        if not drawn:  # what it printed instead (a traceback on mount, say)
            self.pump(1.0)
            text = plain(bytes(self.process.output))
            if "Traceback" in text and not self.tracebacks:
                self.tracebacks.append(text[text.index("Traceback") :])
        return drawn

    def alive(self) -> bool:
        if self.exit_code is not None:
            return False
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.exit_code = os.waitstatus_to_exitcode(status)
            return False
        return True

    def send(self, keys: str, pause: float = 0.15) -> None:
        os.write(self.process.fd, keys.encode())
        self.pump(pause)

    def type_text(self, text: str) -> None:
        for char in text:
            self.send(char, 0.03)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        """Read until `pattern` shows in what is drawn from now on."""
        start = self.trimmed + len(self.process.output)  # counted from the first byte
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.2)
            fresh = self.process.output[max(0, start - self.trimmed) :]
            found = re.search(pattern, plain(bytes(fresh)))
            if found:
                return found
            if not self.alive():
                return None
        return None

    def quit(self, timeout: float = 30.0) -> int | None:
        """`q` from the main screen (escapes close any dialog first); the exit code, or
        None if it would not go. A quit refused while a change is applied is retried."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.send("\x1b", 0.4)
            self.send("\x1b", 0.4)
            self.send("q", 0.2)
            end = time.monotonic() + 5
            while time.monotonic() < end:
                if not self.alive():
                    self.drain_after_exit()
                    return self.exit_code
                self.pump(0.2)
        return None

    def drain_after_exit(self) -> None:
        """What the process printed on its way out (a traceback, say)."""
        self.pump(0.3)

    def kill(self) -> None:
        self.note_children()
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.exit_code = -signal.SIGKILL
        self.reap_children()

    def reap_children(self) -> None:
        for child in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(self.process.fd)


@dataclass
class Lifetime:
    number: int
    pid: int
    warm_rss: int | None = None
    end_rss: int | None = None
    peak_rss: int = 0
    children_warm_rss: int | None = None
    children_end_rss: int | None = None
    ending: str = ""
    samples: list[tuple[float, int]] = field(default_factory=list)


@dataclass
class Tally:
    attempted: Counter[str] = field(default_factory=Counter)
    confirmed: Counter[str] = field(default_factory=Counter)
    sequence: list[str] = field(default_factory=list)  # the acts, for a crash report
    crashes: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)  # state dirs a start died on


def crash_summary(text: str) -> str:
    """The frames (file:line in function) and the exception of a traceback as drawn,
    whether plain or in Rich's boxes."""
    frames = re.findall(r"(/[\w./-]+\.py:\d+ in \w+)", text)
    lines = [line.strip(" │╭╮╰╯─") for line in text.splitlines()]
    errors = [line for line in lines if EXCEPTION_LINE.match(line)]
    where = " <- ".join(reversed(frames[-6:]))
    return where + "\n    " + (errors[-1] if errors else "(no exception line)")


def children_rss(dash: Dashboard) -> int:
    return sum(rss_kib(pid) or 0 for pid in dash.children)


# --- the acts -------------------------------------------------------------------


def act_fault(dash: Dashboard, rng: random.Random, tally: Tally) -> str:
    region, fault = rng.choice(REGIONS), rng.choice(FAULTS)
    dash.send("\x1b", 0.3)
    dash.send("x", 0.2)
    if dash.wait_for(r"Demo fault panel", 5) is None:
        return f"fault {region} {fault}: panel did not open"
    # Home highlights the first enabled option; the headers are disabled, so each
    # region's faults follow one another in the list.
    index = REGIONS.index(region) * len(FAULTS) + FAULTS.index(fault)
    dash.send("\x1b[H", 0.1)  # Home
    for _ in range(index):
        dash.send("\x1b[B", 0.03)  # Down
    dash.send("\r", 0.1)
    shown = dash.wait_for(r"demo: (\w+) now (\w+)", 8)
    if shown and (shown.group(1), shown.group(2)) == (region, fault):
        tally.confirmed["fault"] += 1
        tally.confirmed[f"fault:{fault}"] += 1
    return f"fault {region} {fault}" + ("" if shown else " (no notice)")


def act_move(dash: Dashboard, rng: random.Random, tally: Tally, key: str, kind: str) -> str:
    dash.send("\x1b", 0.3)
    dash.send(key, 0.2)
    title = dash.wait_for(rf"{kind.upper()} (\S+) → (\S+)", 15)
    if title is None:
        dash.send("\x1b", 0.3)
        return f"{kind}: no dialog"
    target = title.group(2)
    tally.confirmed[f"{kind} dialog"] += 1
    if rng.random() < 0.2:  # an operator who thinks better of it
        dash.send("\x1b", 0.3)
        return f"{kind} to {target}: cancelled"
    dash.send("\t", 0.1)  # Cancel → typed id
    dash.type_text(target)
    dash.send("\t", 0.1)  # → reason
    dash.type_text("soak")
    dash.send("\r", 0.2)
    outcome = dash.wait_for(r"(refused|cancelled|verified|FAILED|rolled back|Result|result)", 20)
    if outcome is not None:
        tally.confirmed[f"{kind} submitted"] += 1
    dash.pump(rng.uniform(1, 4))  # the result screen, then back
    dash.send("\x1b", 0.3)
    dash.send("\x1b", 0.3)
    return f"{kind} to {target}: {outcome.group(1) if outcome else 'no outcome shown'}"


def act_ack(dash: Dashboard, rng: random.Random, tally: Tally) -> str:
    dash.send("\x1b", 0.3)
    for _ in range(rng.randint(0, 3)):  # focus wanders: the alert pane, or not
        dash.send("\t", 0.1)
    if rng.random() < 0.5:
        dash.send("\x1b[B", 0.1)
    dash.send("a", 0.3)
    if dash.wait_for(r"note: what you are doing", 3) is None:
        return "ack: nothing to ack"
    tally.confirmed["ack dialog"] += 1
    dash.type_text("soak ack")
    dash.send("\r", 0.3)
    return "ack"


def act_silence(dash: Dashboard, rng: random.Random, tally: Tally) -> str:
    dash.send("\x1b", 0.3)
    dash.send("s", 0.3)
    if dash.wait_for(r"Silence alerts", 5) is None:
        return "silence: no dialog"
    tally.confirmed["silence dialog"] += 1
    # Focus starts on "Why"; one back is "For": a short silence, so alerts come back.
    dash.send("\x1b[Z", 0.1)  # Shift+Tab
    for _ in range(4):
        dash.send("\x7f", 0.03)
    minutes = rng.randint(1, 5)
    dash.type_text(f"{minutes}m")
    dash.send("\t", 0.1)
    dash.type_text("soak silence")
    dash.send("\r", 0.3)
    return f"silence {minutes}m"


def act_look(dash: Dashboard, rng: random.Random, tally: Tally) -> str:
    key = rng.choice(["v", "l", "n", "d", "u", "r", "[", "]", "?"])
    dash.send("\x1b", 0.3)
    dash.send(key, rng.uniform(1, 3))
    dash.send("\x1b", 0.3)
    tally.confirmed["look"] += 1
    return f"look {key}"


ACTS: list[tuple[float, str, Callable[[Dashboard, random.Random, Tally], str]]] = [
    (5.0, "fault", act_fault),
    (1.2, "failover", lambda d, r, t: act_move(d, r, t, "f", "failover")),
    (1.0, "failback", lambda d, r, t: act_move(d, r, t, "b", "failback")),
    (1.5, "ack", act_ack),
    (1.0, "silence", act_silence),
    (1.5, "look", act_look),
]


# --- the run --------------------------------------------------------------------


def save_tracebacks(root: Path, number: int, dash: Dashboard) -> None:
    if dash.tracebacks:
        (root / f"traceback-{number}.txt").write_text("\n\n".join(dash.tracebacks))


def quiet_anchor(state_home: Path) -> Dashboard | None:
    anchor = Dashboard(state_home)
    if not anchor.start():
        tail = plain(bytes(anchor.process.output[-2000:]))
        print(f"the quiet anchor never drew its screen (exit {anchor.exit_code}); "
              f"the run goes on without it. It showed:\n{tail}", flush=True)  # fmt: skip
        anchor.kill()
        return None
    return anchor


def import_anchor_rss() -> int | None:
    """RSS of a bare interpreter that imports textual and the dashboard's module."""
    import subprocess

    code = (
        "import textual.app, noc.app, pathlib;"
        "print([l for l in pathlib.Path('/proc/self/status').read_text().splitlines()"
        " if l.startswith('VmRSS')][0].split()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return int(out.stdout.strip()) if out.stdout.strip().isdigit() else None


def logged_exceptions(*homes: Path) -> tuple[int, int, list[str]]:
    tracebacks = errors = 0
    firsts: list[str] = []
    for log in sorted(log for home in homes for log in home.rglob("noc.log*")):
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("Traceback"):
                tracebacks += 1
            elif " ERROR " in line or " CRITICAL " in line:
                errors += 1
                firsts.append(line[:200])
    return tracebacks, errors, firsts


def episodes(*homes: Path) -> tuple[int, int]:
    """Firing transitions and resolved transitions recorded in every alert journal."""
    firing = resolved = 0
    for journal in (j for home in homes for j in home.rglob("alerts.jsonl*")):
        for line in journal.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "alert":
                firing += record.get("transition") == "firing"
                resolved += record.get("transition") == "resolved"
    return firing, resolved


def pages(state_home: Path) -> str:
    outboxes = list(state_home.rglob("outbox*.jsonl"))
    if not outboxes:
        return "n/a (the demo configures no notification channel; no outbox was written)"
    sent = 0
    for outbox in outboxes:
        lines = outbox.read_text(errors="replace").splitlines()
        sent += sum('"delivered"' in line for line in lines)
    return f"{sent} delivered (from {len(outboxes)} outbox files)"


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="noc-soak-"))
    state_home, anchor_home = root / "state", root / "anchor-state"
    state_home.mkdir()
    anchor_home.mkdir()
    total = args.minutes * 60
    began = time.monotonic()
    deadline = began + total
    print(f"soak: {args.minutes:g} min, seed {args.seed}, pty {SIZE[0]}x{SIZE[1]}, "
          f"warm-up {args.warmup:g} s, state under {root}", flush=True)  # fmt: skip
    anchor = quiet_anchor(anchor_home) if args.anchor else None
    anchor_warm: int | None = None
    tally = Tally()
    lifetimes: list[Lifetime] = []
    servers_of: list[Dashboard] = []  # to say whether any demo's servers outlived the run
    weights = [w for w, _, _ in ACTS]
    try:
        while time.monotonic() < deadline - args.warmup - 30:
            number = len(lifetimes) + 1
            dash = Dashboard(state_home)
            servers_of.append(dash)
            life = Lifetime(number, dash.pid)
            lifetimes.append(life)
            tally.sequence.append(f"-- start {number} (pid {dash.pid})")
            if not dash.start():
                tally.crashes.append(
                    f"lifetime {number}: never drew its screen (exit {dash.exit_code}); "
                    + (crash_summary(dash.tracebacks[0]) if dash.tracebacks else "no traceback")
                )
                save_tracebacks(root, number, dash)
                dash.kill()
                if args.keep_going:
                    # Every later start would die the same way on this state: it is set
                    # aside (kept, and said) so the rest of the run still measures.
                    aside = root / f"state-set-aside-{number}"
                    state_home.rename(aside)
                    state_home.mkdir()
                    tally.set_aside.append(str(aside))
                    tally.sequence.append(f"-- state set aside to {aside}")
                continue
            # The first lifetime is long: memory over one process, not only across restarts.
            span = total / 2 if number == 1 else rng.uniform(120, 300)
            ends_at = min(deadline, time.monotonic() + span)
            warm_at = time.monotonic() + args.warmup
            crashed = False
            while time.monotonic() < ends_at:
                weight_pick = rng.choices(ACTS, weights)[0]
                name, act = weight_pick[1], weight_pick[2]
                tally.attempted[name] += 1
                try:
                    done = act(dash, rng, tally)
                except OSError as exc:  # the pty is gone: the process died
                    done = f"{name}: pty error {exc}"
                tally.sequence.append(f"{time.monotonic() - began:7.1f}s {done}")
                dash.pump(rng.uniform(0.5, args.gap))
                rss = rss_kib(dash.pid)
                if rss is not None:
                    life.peak_rss = max(life.peak_rss, rss)
                    life.samples.append((time.monotonic() - began, rss))
                if life.warm_rss is None and time.monotonic() >= warm_at:
                    life.warm_rss, life.children_warm_rss = rss, children_rss(dash)
                    if anchor is not None and anchor_warm is None:
                        anchor_warm = rss_kib(anchor.pid)
                if anchor is not None:
                    anchor.pump(0.05)
                if not dash.alive() or dash.tracebacks:
                    crashed = True
                    break
            life.end_rss, life.children_end_rss = rss_kib(dash.pid), children_rss(dash)
            if crashed:
                life.ending = f"CRASH (exit {dash.exit_code})"
                tally.crashes.append(
                    f"lifetime {number}: exit {dash.exit_code}; "
                    + (crash_summary(dash.tracebacks[0]) if dash.tracebacks else "no traceback")
                )
                save_tracebacks(root, number, dash)
                dash.kill()
                continue
            if rng.random() < 0.5:
                dash.kill()
                life.ending = "kill -9"
            else:
                code = dash.quit()
                life.ending = f"q -> exit {code}"
                if code != 0 or dash.tracebacks:
                    tally.crashes.append(
                        f"lifetime {number}: q gave exit {code}; "
                        + (crash_summary(dash.tracebacks[0]) if dash.tracebacks else "no traceback")
                    )
                    save_tracebacks(root, number, dash)
                dash.kill()  # already gone: only its orphans, if any
            tally.sequence.append(f"-- end {number}: {life.ending}")
    finally:
        anchor_end = rss_kib(anchor.pid) if anchor is not None else None
        if anchor is not None:
            anchor.quit()
            anchor.kill()
            servers_of.append(anchor)
    time.sleep(2)
    left = still_running({pid for dash in servers_of for pid in dash.children})
    report(args, root, state_home, lifetimes, tally, anchor_warm, anchor_end)
    print(f"demo redis-servers still running after the run: {len(left)} {left or ''}")
    return 1 if tally.crashes else 0


def still_running(pids: set[int]) -> list[int]:
    """Those of `pids` still running (a zombie, reaped soon by init, is not)."""
    running = []
    for pid in sorted(pids):
        with contextlib.suppress(OSError):
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                running.append(pid)
    return running


def report(
    args: argparse.Namespace,
    root: Path,
    state_home: Path,
    lifetimes: list[Lifetime],
    tally: Tally,
    anchor_warm: int | None,
    anchor_end: int | None,
) -> None:
    print("\nacts attempted: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.attempted.items())))
    print("seen on screen: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.confirmed.items())))
    print(f"crashes: {len(tally.crashes)}")
    for crash in tally.crashes:
        print("  " + crash.replace("\n", "\n  "))
    if tally.set_aside:
        print(f"state set aside after a start died on it: {len(tally.set_aside)} times "
              "(figures below count every state dir)")  # fmt: skip
    homes = [state_home, *(Path(p) for p in tally.set_aside)]
    tracebacks, errors, firsts = logged_exceptions(*homes)
    print(f"logged exceptions (noc.log): {tracebacks} tracebacks, {errors} ERROR lines")
    anchor_tracebacks, anchor_errors, _ = logged_exceptions(root / "anchor-state")
    print(f"  (the quiet anchor's noc.log: {anchor_tracebacks} tracebacks, {anchor_errors} ERROR)")
    for line in firsts[:10]:
        print("  " + line)
    print("\nRSS of the dashboard process (MiB): warm = after the warm-up, end = at its end")
    print(f"{'life':>4} {'pid':>7} {'warm':>6} {'end':>6} {'peak':>6} {'change':>7} "
          f"{'redis warm':>10} {'redis end':>9}  ending")  # fmt: skip
    for life in lifetimes:
        change = (
            f"{(life.end_rss - life.warm_rss) / life.warm_rss:+6.1%}"
            if life.warm_rss and life.end_rss
            else "    n/a"
        )
        print(f"{life.number:>4} {life.pid:>7} {mib(life.warm_rss)} {mib(life.end_rss)} "
              f"{mib(life.peak_rss or None)} {change:>7} {mib(life.children_warm_rss):>10} "
              f"{mib(life.children_end_rss):>9}  {life.ending}")  # fmt: skip
    warm = [life.warm_rss for life in lifetimes if life.warm_rss]
    ends = [life.end_rss for life in lifetimes if life.end_rss and life.warm_rss]
    if warm and ends:
        change = (ends[-1] - warm[0]) / warm[0]
        print(f"overall: first warm {mib(warm[0])} MiB, last end {mib(ends[-1])} MiB "
              f"({change:+.1%}); highest end {mib(max(ends))} MiB")  # fmt: skip
    if lifetimes and lifetimes[0].samples:
        long = lifetimes[0]
        print(f"long lifetime (1): samples every act, {len(long.samples)} samples; "
              "per-5-minute medians (MiB):")  # fmt: skip
        buckets: dict[int, list[int]] = {}
        for at, rss in long.samples:
            buckets.setdefault(int(at // 300), []).append(rss)
        medians = [(k, sorted(v)[len(v) // 2]) for k, v in sorted(buckets.items())]
        print("  " + "  ".join(f"{k * 5}-{k * 5 + 5}m {m / 1024:.1f}" for k, m in medians))
    print(f"anchor, quiet demo beside it: warm {mib(anchor_warm)} MiB, end {mib(anchor_end)} MiB")
    print(f"anchor, bare `import textual.app, noc.app`: {mib(import_anchor_rss())} MiB")
    firing, resolved = episodes(*homes)
    print(f"alert episodes (journal): {firing} fired, {resolved} resolved")
    print(f"pages sent: {pages(root / 'state')}")
    if tally.crashes or args.show_acts:
        print("\nact sequence:")
        for line in tally.sequence[-400:]:
            print("  " + line)
    print(f"\nstate kept under {root}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--warmup", type=float, default=60, help="seconds before 'warm' RSS")
    parser.add_argument("--gap", type=float, default=4.0, help="longest pause between acts (s)")
    parser.add_argument("--no-anchor", dest="anchor", action="store_false")
    parser.add_argument(
        "--stop-on-dead-state",
        dest="keep_going",
        action="store_false",
        help="do not set aside a state dir that a start died on (later starts die too)",
    )
    parser.add_argument("--show-acts", action="store_true", help="print the act sequence")
    sys.exit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
