"""Where an estate keeps its record, and that the record is whole.

Real files throughout: a torn tail is written as a crash leaves it, a full disk is
a real one (a 64 KiB tmpfs when this runs as root, /dev/full otherwise), and the
CLI runs as a subprocess with its own XDG_STATE_HOME.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paths import BENCH

from noc.audit import (
    DEMO_DIR_NAME,
    EstatePaths,
    JsonlLog,
    RecordNotWritten,
    demo_paths,
    estate_dir_name,
    estate_paths,
    prepare_state,
    read_jsonl,
    repair_torn_tail,
)
from noc.clock import SystemClock
from noc.config import parse_config
from noc.model import CheckTarget, mask_url
from noc.simulator import HealthEndpoint
from noc_collectors.http import HttpHealthCollector

REGION = '[[regions]]\nid = "ro"\nrole = "primary"\n'


def config_text(name: str, extra: str = "") -> str:
    return f'[estate]\nname = "{name}"\n{extra}\n{REGION}'


# --- per-estate paths ---


@given(st.text(max_size=300))
def test_an_estate_name_is_one_safe_directory_name(name: str) -> None:
    directory = estate_dir_name(name)
    assert directory and "/" not in directory and "\x00" not in directory
    assert not directory.startswith(".")  # never hidden, never "." or ".."
    assert directory != DEMO_DIR_NAME
    assert len(directory.encode()) <= 96


@given(st.text(max_size=120), st.text(max_size=120))
def test_different_estate_names_never_share_a_directory(one: str, other: str) -> None:
    if one != other:
        assert estate_dir_name(one) != estate_dir_name(other)


def test_estate_dir_follows_xdg_state_home_and_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    prod = parse_config(
        {"estate": {"name": "mail prod"}, "regions": [{"id": "ro", "role": "primary"}]}
    )
    assert estate_paths(prod).directory == tmp_path / "state" / "noc" / "mail%20prod"
    assert estate_paths(prod).audit.name == "audit.jsonl"
    moved = parse_config(
        {
            "estate": {"name": "x", "state_dir": str(tmp_path / "own")},
            "regions": [{"id": "ro", "role": "primary"}],
        }
    )
    assert estate_paths(moved).directory == tmp_path / "own"
    assert demo_paths().directory == tmp_path / "state" / "noc" / ".demo"


def run_noc(state: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOC_")}
    env["XDG_STATE_HOME"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "noc", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_noc_audit_reads_the_configured_estates_record(tmp_path: Path) -> None:
    state = tmp_path / "state"
    prod = tmp_path / "prod.toml"
    prod.write_text(config_text("prod"))
    staging = tmp_path / "staging.toml"
    own = tmp_path / "elsewhere"
    staging.write_text(config_text("staging", f'state_dir = "{own}"'))
    JsonlLog(state / "noc" / "prod" / "audit.jsonl", SystemClock()).append("ack", note="prod")
    JsonlLog(own / "audit.jsonl", SystemClock()).append("ack", note="staging")
    JsonlLog(demo_paths_under(state) / "audit.jsonl", SystemClock()).append("ack", note="demo")

    def notes(*args: str) -> list[str]:
        run = run_noc(state, "audit", "--json", *args, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        return [r["note"] for r in json.loads(run.stdout)]

    assert notes("--config", str(prod)) == ["prod"]
    assert notes("--config", str(staging)) == ["staging"]
    assert notes("--demo") == ["demo"]


def demo_paths_under(state: Path) -> Path:
    return state / "noc" / DEMO_DIR_NAME


def test_the_old_shared_layout_is_moved_once_with_a_notice(tmp_path: Path) -> None:
    state = tmp_path / "state"
    shared = state / "noc"
    shared.mkdir(parents=True)
    JsonlLog(shared / "audit.jsonl", SystemClock()).append("ack", note="before the upgrade")
    (shared / "alerts.jsonl").write_text("")
    (shared / "noc.log").write_text("old log\n")
    (shared / "noc.log.1").write_text("older log\n")
    config = tmp_path / "noc.toml"
    config.write_text(config_text("prod"))

    first = run_noc(state, "audit", "--config", str(config), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "ack" in first.stdout
    for name in ("audit.jsonl", "alerts.jsonl", "noc.log", "noc.log.1"):
        assert not (shared / name).exists()
        assert (shared / "prod" / name).exists()
        assert f"moved {shared / name} to {shared / 'prod' / name}" in first.stderr
    again = run_noc(state, "audit", "--config", str(config), cwd=tmp_path)
    assert again.returncode == 0 and "moved" not in again.stderr


def test_an_estate_that_has_its_own_file_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config = parse_config(
        {"estate": {"name": "prod"}, "regions": [{"id": "ro", "role": "primary"}]}
    )
    paths = estate_paths(config)
    JsonlLog(paths.audit, SystemClock()).append("ack", note="the estate's own")
    JsonlLog(paths.directory.parent / "audit.jsonl", SystemClock()).append("ack", note="shared")
    notices = prepare_state(paths)
    assert len(notices) == 1 and "left in place" in notices[0]
    assert [r["note"] for r in read_jsonl(paths.audit).records] == ["the estate's own"]
    assert (paths.directory.parent / "audit.jsonl").exists()


def test_the_demo_never_takes_the_shared_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    shared = tmp_path / "state" / "noc"
    shared.mkdir(parents=True)
    (shared / "audit.jsonl").write_text("")
    assert prepare_state(demo_paths(), adopt_legacy=False) == []
    assert (shared / "audit.jsonl").exists()
    assert oct(demo_paths().directory.stat().st_mode & 0o777) == oct(0o700)


# --- the record is whole ---


def test_a_torn_tail_never_swallows_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = JsonlLog(path, SystemClock())
    log.append("planned", action="failover")
    with path.open("ab") as handle:  # what a kill mid-write leaves: no newline
        handle.write(b'{"ts": "2024-01-01T00:00:00Z", "event": "conf')
    log.append("cancelled", action="failover")
    read = read_jsonl(path)
    assert [r["event"] for r in read.records] == ["planned", "cancelled"]
    assert read.damaged_lines == []
    kept = [json.loads(line) for line in (tmp_path / "audit.jsonl.torn").read_text().splitlines()]
    assert kept[0]["bytes"] == '{"ts": "2024-01-01T00:00:00Z", "event": "conf'
    assert kept[0]["found"]


def test_repair_leaves_a_whole_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    JsonlLog(path, SystemClock()).append("ack")
    before = path.read_bytes()
    assert repair_torn_tail(path) is None
    assert repair_torn_tail(tmp_path / "absent.jsonl") is None
    assert path.read_bytes() == before


def test_a_torn_file_with_no_whole_line_is_emptied_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"x" * 200_000)  # longer than one backward read
    torn = repair_torn_tail(path)
    assert torn is not None and torn.size == 200_000 and "torn" in torn.notice()
    assert path.read_bytes() == b""


def test_a_failing_write_is_an_error_naming_the_file(tmp_path: Path) -> None:
    # /dev/full: every write fails with ENOSPC, a real disk-full answer from the kernel.
    path = tmp_path / "audit.jsonl"
    path.symlink_to("/dev/full")
    with pytest.raises(RecordNotWritten) as caught:
        JsonlLog(path, SystemClock()).append("planned")
    assert str(path) in str(caught.value) and "No space left" in str(caught.value)
    assert caught.value.errno == errno.ENOSPC


@contextlib.contextmanager
def tiny_filesystem(size: str = "64k") -> Iterator[Path]:
    """A real filesystem that fills up: a tmpfs, mounted for this test only."""
    directory = Path(tempfile.mkdtemp(prefix="noc-full-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        directory.rmdir()
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)
        directory.rmdir()


def test_a_short_write_on_a_full_disk_is_an_error_and_then_repaired() -> None:
    with tiny_filesystem() as disk:
        path = disk / "audit.jsonl"
        log = JsonlLog(path, SystemClock())
        log.append("planned", note="first")
        filler = disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as handle:
            handle.write(b"\0" * 1_000_000)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        room = 4096 - path.stat().st_size % 4096  # what is left in the file's last page
        assert free == 0, "the disk is full"
        with pytest.raises(RecordNotWritten) as caught:
            log.append("confirmed", note="x" * (room + 500))
        assert str(path) in str(caught.value)
        assert "short write" in str(caught.value)
        # Nothing reported done was lost; the cut record is not read as a record.
        assert [r["note"] for r in read_jsonl(path).records] == ["first"]
        filler.unlink()  # the operator frees space: the next record is whole
        log.append("cancelled", note="after")
        assert [r["note"] for r in read_jsonl(path).records] == ["first", "after"]
        assert read_jsonl(path).damaged_lines == []
        assert "confirmed" in (disk / "audit.jsonl.torn").read_text()


# --- noc.log ---


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """_log_to_file replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, old in chatty.items():
            logging.getLogger(name).setLevel(old)


async def test_noc_log_is_private_and_carries_no_probe_lines_or_secrets(
    tmp_path: Path,
    restored_logging: None,
    health_endpoint: Callable[..., Awaitable[HealthEndpoint]],
) -> None:
    from noc.cli import _log_to_file

    paths = EstatePaths(tmp_path / "estate")
    paths.directory.mkdir()
    paths.log.write_text("from an older noc\n")
    paths.log.chmod(0o644)
    backup = paths.directory / "noc.log.1"
    backup.write_text("older still\n")
    backup.chmod(0o644)
    _log_to_file(paths, ["moved something"])
    endpoint = await health_endpoint("ro")
    scheme, rest = endpoint.url.split("://", 1)
    url = f"{scheme}://operator:hunter2@{rest}?token=t0ken"
    collector = HttpHealthCollector()
    try:
        for _ in range(3):
            sample = await collector.probe(
                CheckTarget(check_id="ro/0", region_id="ro", name="health", url=url)
            )
            assert sample.ok
    finally:
        await collector.aclose()
    logging.getLogger("noc.test").warning("probe of %s", mask_url(url))
    try:
        raise ValueError(f"cannot parse {url}")  # an exception that quotes its URL
    except ValueError:
        logging.getLogger("noc.test").exception("unexpected")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = paths.log.read_text()
    assert "moved something" in text and "probe of" in text and "cannot parse" in text
    assert "HTTP Request" not in text  # httpx's per-probe INFO line
    assert "hunter2" not in text and "t0ken" not in text
    for path in (paths.log, backup):
        assert path.stat().st_mode & 0o777 == 0o600


def test_a_rotated_noc_log_stays_private(tmp_path: Path, restored_logging: None) -> None:
    from noc.cli import _PrivateRotatingFileHandler

    path = tmp_path / "noc.log"
    handler = _PrivateRotatingFileHandler(path, maxBytes=200, backupCount=2)
    logger = logging.getLogger("noc.test.rotation")
    logger.addHandler(handler)
    try:
        for number in range(20):
            logger.warning("line %d %s", number, "x" * 40)
    finally:
        logger.removeHandler(handler)
        handler.close()
    files = sorted(tmp_path.glob("noc.log*"))
    assert len(files) == 3
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)


# --- the demo keeps to itself ---


def test_the_demo_never_reads_or_writes_an_estates_state(tmp_path: Path) -> None:
    """A real estate's record (with an alert journal the demo would choke on) and the
    old shared layout are left byte for byte; the demo writes only its own dir."""
    sys.path.insert(0, str(BENCH))
    from ptyproc import PtyProcess

    state = tmp_path / "state"
    estate = state / "noc" / "mail-prod"
    estate.mkdir(parents=True)
    records = {
        "alerts.jsonl": b'{"event": "alert", "transition": "firing", "alert": {"id": 1}}\n',
        "audit.jsonl": b'{"ts": "2024-01-01T00:00:00Z", "event": "verified"}\n',
        "noc.log": b"production log\n",
    }
    for name, content in records.items():
        (estate / name).write_bytes(content)
        (state / "noc" / name).write_bytes(content)  # the old shared layout too
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in state.rglob("*") if p.is_file()}
    env = dict(os.environ, XDG_STATE_HOME=str(state))
    process = PtyProcess.spawn([sys.executable, "-m", "noc", "demo"], env=env)
    try:
        assert process.read_until(b"LIVE", timeout=60), process.output[-2000:]
        process.hang_up()
        assert process.wait(10) is not None
    finally:
        process.stop()
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before}
    assert after == before
    demo = state / "noc" / DEMO_DIR_NAME
    assert (demo / "noc.log").exists()
    assert (demo / "noc.log").stat().st_mode & 0o777 == 0o600
    new = {p for p in state.rglob("*") if p.is_file()} - set(before)
    assert new and all(demo in p.parents for p in new), new
