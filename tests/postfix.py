"""A real Postfix for mail tests: its own config and queue in a temp dir, one loopback
port, always stopped.

Use it from a test module (tests/ is on sys.path):

    from postfix import PostfixServer, postfix_binary

- `PostfixServer(main={...}, tls=PostfixTls(...))`: `start()` writes main.cf and
  master.cf under a fresh temp dir (or `workdir`, which the mail owner must be able to
  reach: not pytest's tmp_path), runs Postfix's `master` in the foreground (`-d`) as a
  child of this process, and waits until smtpd answers on `port`; `stop()` ends it and
  every daemon it spawned. It is a context manager too.
- `main` holds extra main.cf settings (a 421 at connect, `smtpd_tls_security_level =
  none`, ...); `tls` a certificate and key (PEM files) for STARTTLS, or for implicit TLS
  (`wrapper_mode`) on the port.

Without Postfix the tests skip with the install hint, unless NOC_REQUIRE_POSTFIX=1 (CI
sets it): then they fail.

Why `master -d` rather than `postfix start`: the master stays our child, so stopping
it is a signal to a process id we own, never a search by name; and no pid file or
syslog of the machine is touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import pytest
from processes import descendants, wait_gone

INSTALL_HINT = "postfix not installed: apt-get install postfix"
MASTER = Path("/usr/lib/postfix/sbin/master")
DAEMON_DIRECTORY = MASTER.parent
# master answers in ~0.1 s; a loaded CI machine gets far more slack.
READY_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0


def postfix_binary() -> Path:
    """The master daemon, or skip (fail under NOC_REQUIRE_POSTFIX=1) with the install hint."""
    if not MASTER.is_file() or shutil.which("postconf", path="/usr/sbin:/usr/bin") is None:
        if os.environ.get("NOC_REQUIRE_POSTFIX") == "1":
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    if os.geteuid() != 0:
        # master drops privileges to mail_owner and needs root-owned directories.
        pytest.skip("a private postfix instance needs root here")
    return MASTER


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class PostfixTls:
    cert_file: Path  # the chain, leaf first
    key_file: Path
    implicit: bool = False  # TLS from the first byte (port 465's "wrapper mode")


@dataclass
class PostfixServer:
    # Postfix's daemons run as the mail owner and must reach the queue through every
    # parent directory: pytest's tmp_path (mode 0700) will not do. None: a fresh
    # directory under the system's temp dir, removed by stop().
    workdir: Path | None = None
    main: Mapping[str, str] = field(default_factory=dict)
    tls: PostfixTls | None = None
    hostname: str = "mx.test.example"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    owns_workdir: bool = False

    @property
    def root(self) -> Path:
        assert self.workdir is not None, "start() first"
        return self.workdir

    @property
    def config_directory(self) -> Path:
        return self.root / "etc"

    @property
    def log_file(self) -> Path:
        return self.root / "maillog"

    def start(self) -> PostfixServer:
        master = postfix_binary()
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="noc-postfix-"))
            self.owns_workdir = True
        if not self.port:
            self.port = free_port()
        self._write_config()
        # Creates the queue's subdirectories with the owners and modes Postfix wants.
        subprocess.run(
            ["postfix", "-c", str(self.config_directory), "check"],
            check=True,
            capture_output=True,
            timeout=READY_TIMEOUT_SECONDS,
        )
        self.process = subprocess.Popen(
            [str(master), "-c", str(self.config_directory), "-d"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "master.stderr").open("wb"),
            # Its own process group: a Ctrl-C at the terminal is the test's to handle.
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        spawned = descendants(process.pid)
        if process.poll() is None:
            # SIGTERM: master ends its daemons and exits.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_SECONDS)
        left, _ = wait_gone(spawned, STOP_TIMEOUT_SECONDS)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_gone(left, STOP_TIMEOUT_SECONDS)
        if self.owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PostfixServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def _write_config(self) -> None:
        etc = self.config_directory
        queue = self.root / "queue"
        data = self.root / "data"
        for directory in (etc, queue, data):
            directory.mkdir(parents=True, exist_ok=True)
        # The queue and data directories belong to root and the mail owner, as Postfix
        # checks; the directory above them must be searchable by the mail owner.
        self.root.chmod(0o755)
        shutil.chown(data, "postfix", "postfix")
        settings: dict[str, str] = {
            "compatibility_level": "3.6",
            "queue_directory": str(queue),
            "data_directory": str(data),
            "daemon_directory": str(DAEMON_DIRECTORY),
            "command_directory": "/usr/sbin",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.hostname,
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "maillog_file": str(self.log_file),
            # Postfix writes a log file only under these prefixes (default /var, /dev/stdout).
            "maillog_file_prefixes": str(self.root),
            "smtpd_banner": "$myhostname ESMTP noc-test",
            # No DNS at all: the tests' machine may have none.
            "smtp_host_lookup": "native",
            "disable_dns_lookups": "yes",
            "smtpd_peername_lookup": "no",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "shlib_directory": "/usr/lib/postfix",
            "meta_directory": "/etc/postfix",
        }
        if self.tls is not None:
            # Copied beside the config: smtpd must be able to read them wherever the
            # test made them.
            key_file, cert_file = etc / "key.pem", etc / "chain.pem"
            shutil.copyfile(self.tls.key_file, key_file)
            shutil.copyfile(self.tls.cert_file, cert_file)
            key_file.chmod(0o600)
            settings |= {
                "smtpd_tls_chain_files": f"{key_file}, {cert_file}",
                "smtpd_tls_security_level": "encrypt" if self.tls.implicit else "may",
            }
            if self.tls.implicit:
                settings["smtpd_tls_wrappermode"] = "yes"
        settings |= dict(self.main)
        main_cf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (etc / "main.cf").write_text(main_cf)
        listen = f"127.0.0.1:{self.port}"
        (etc / "master.cf").write_text(
            f"{listen} inet n - n - - smtpd\n"
            "pickup unix n - n 60 1 pickup\n"
            "cleanup unix n - n - 0 cleanup\n"
            "qmgr unix n - n 300 1 qmgr\n"
            "tlsmgr unix - - n 1000? 1 tlsmgr\n"
            "rewrite unix - - n - - trivial-rewrite\n"
            "bounce unix - - n - 0 bounce\n"
            "defer unix - - n - 0 bounce\n"
            "trace unix - - n - 0 bounce\n"
            "verify unix - - n - 1 verify\n"
            "flush unix n - n 1000? 0 flush\n"
            "proxymap unix - - n - - proxymap\n"
            "smtp unix - - n - - smtp\n"
            "showq unix n - n - - showq\n"
            "error unix - - n - - error\n"
            "retry unix - - n - - error\n"
            "discard unix - - n - - discard\n"
            "anvil unix - - n - 1 anvil\n"
            "scache unix - - n - 1 scache\n"
            "postlog unix-dgram n - n - 1 postlogd\n"
        )

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = (self.root / "master.stderr").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"postfix master exited: {stderr.strip()}\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection,
            ):
                # master accepts before smtpd runs: a first byte means smtpd answered
                # (the greeting, or the TLS server's silence until our hello).
                if self.tls is not None and self.tls.implicit:
                    return
                connection.settimeout(2)
                if connection.recv(1):
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postfix did not answer on port {self.port}\n{self.log()}")
