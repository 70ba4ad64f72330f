"""A real Postfix for every mail test, and postfix_exporter reading it: each instance has
its own config, queue and data dirs in a temp dir, one loopback port, and is always stopped.

Use it from a test module (tests/ is on sys.path):

    from postfix import PostfixExporter, PostfixServer, PostfixTls, free_port

- `PostfixServer(main={...}, tls=PostfixTls(...))`: `start()` writes main.cf and
  master.cf under a fresh temp dir (or `workdir`, which the mail owner must be able to
  reach: not pytest's tmp_path), runs Postfix's `master` in the foreground (`-d`) as a
  child of this process, and waits until smtpd answers on `port` and showq listens;
  `stop()` ends it and every daemon it spawned. It is a context manager too.
- `main` holds extra main.cf settings (a 421 at connect, `smtpd_tls_security_level =
  none`, ...); `tls` a certificate chain and key for STARTTLS, or for implicit TLS
  (`wrapper_mode`) on the port (`PostfixTls.issued(leaf)` from a trustme certificate).
- Mail for a remote domain is deferred: the relayhost is a closed loopback port. No
  client may relay (mynetworks excludes loopback), so a RCPT to a remote domain over
  SMTP is rejected 554 and logged. `submit`, `hold`, `reject` and `queue_entries` drive
  and read the queue.
- The log goes to its own file (`maillog_file` through postlogd; no syslog needed),
  under the program name "postfix/...", the only one postfix_exporter recognises.
- `PostfixExporter(server)` runs Debian's prometheus-postfix-exporter against it:
  `--postfix.showq_path` points at this queue's showq socket (the default is the
  system's /var/spool/postfix/public/showq) and `--postfix.logfile_path` at its log.

Without Postfix (or the exporter) the tests skip with the install hint, unless
NOC_REQUIRE_POSTFIX=1 (CI sets it): then they fail.

Why `master -d` rather than `postfix start`: the master stays our child, so stopping
it is a signal to a process id we own, never a search by name; and no pid file or
syslog of the machine is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self

import pytest
from processes import stop_tree

if TYPE_CHECKING:
    import trustme

INSTALL_HINT = "postfix not installed: apt-get install postfix"
EXPORTER_HINT = "postfix_exporter not installed: apt-get install prometheus-postfix-exporter"
MASTER = Path("/usr/lib/postfix/sbin/master")
DAEMON_DIRECTORY = MASTER.parent
EXPORTER = shutil.which("prometheus-postfix-exporter") or shutil.which("postfix_exporter")
# master answers in ~0.1 s; a loaded CI machine gets far more slack.
READY_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0


def _missing(hint: str) -> None:
    if os.environ.get("NOC_REQUIRE_POSTFIX") == "1":
        pytest.fail(hint)
    pytest.skip(hint)


def postfix_binary() -> Path:
    """The master daemon, or skip (fail under NOC_REQUIRE_POSTFIX=1) with the install hint."""
    if not MASTER.is_file() or shutil.which("postconf", path="/usr/sbin:/usr/bin") is None:
        _missing(INSTALL_HINT)
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
    chain_pem: bytes  # the chain, leaf first
    key_pem: bytes
    implicit: bool = False  # TLS from the first byte (port 465's "wrapper mode")

    @classmethod
    def issued(cls, leaf: trustme.LeafCert, *, implicit: bool = False) -> PostfixTls:
        chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
        return cls(chain, leaf.private_key_pem.bytes(), implicit)


class _StartedInWith:
    """`with X(...) as x:` starts x and stops it on the way out, however the block ends."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass
class PostfixServer(_StartedInWith):
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
    def queue_directory(self) -> Path:
        return self.root / "queue"

    @property
    def log_file(self) -> Path:
        return self.root / "maillog"

    @property
    def showq(self) -> Path:
        """The socket postfix_exporter reads the queue from."""
        return self.queue_directory / "public" / "showq"

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
        stop_tree(process, STOP_TIMEOUT_SECONDS)  # SIGTERM: master ends its daemons
        if self.owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    # -- the queue --------------------------------------------------------------------

    def submit(self, recipient: str, sender: str = "noc@mx.test.example") -> None:
        """A message through sendmail (postdrop): queued, then deferred for a remote domain."""
        message = f"From: {sender}\nTo: {recipient}\nSubject: noc queue test\n\nbody\n"
        subprocess.run(
            ["sendmail", "-C", str(self.config_directory), "-f", sender, recipient],
            input=message.encode(),
            check=True,
            timeout=30,
        )

    def queue_entries(self) -> list[dict[str, object]]:
        out = subprocess.run(
            ["postqueue", "-c", str(self.config_directory), "-j"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def hold(self, queue_id: str) -> None:
        self._postsuper("-h", queue_id)

    def delete(self, queue_id: str) -> None:
        self._postsuper("-d", queue_id)

    def reject(self, count: int) -> None:
        """`count` RCPTs to a remote domain over SMTP: each is refused 554 and logged."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.ehlo("client.test.example")
            for _ in range(count):
                with contextlib.suppress(smtplib.SMTPRecipientsRefused):
                    client.sendmail(
                        "a@client.example", ["x@elsewhere.example"], "Subject: x\r\n\r\n"
                    )

    def _postsuper(self, flag: str, queue_id: str) -> None:
        subprocess.run(
            ["postsuper", "-c", str(self.config_directory), flag, queue_id],
            capture_output=True,
            check=True,
            timeout=30,
        )

    # -- config -----------------------------------------------------------------------

    def _write_config(self) -> None:
        etc = self.config_directory
        queue = self.queue_directory
        data = self.root / "data"
        for directory in (etc, queue, data):
            directory.mkdir(parents=True, exist_ok=True)
        # The queue and data directories belong to root and the mail owner, as Postfix
        # checks; the directory above them must be searchable by the mail owner.
        self.root.chmod(0o755)
        shutil.chown(data, "postfix", "postfix")
        closed = free_port()  # nothing listens there: remote mail is deferred
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
            # postfix_exporter recognises only the "postfix/..." program names.
            "syslog_name": "postfix",
            "smtpd_banner": "$myhostname ESMTP noc-test",
            # A documentation network: loopback clients may not relay, so a remote RCPT
            # over SMTP is a logged 554.
            "mynetworks": "192.0.2.0/24",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "relayhost": f"[127.0.0.1]:{closed}",
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
            # Written beside the config: smtpd must be able to read them.
            key_file, cert_file = etc / "key.pem", etc / "chain.pem"
            key_file.write_bytes(self.tls.key_pem)
            cert_file.write_bytes(self.tls.chain_pem)
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
            "relay unix - - n - - smtp\n"
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
            if self.showq.exists() and self._smtpd_answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postfix did not answer on port {self.port}\n{self.log()}")

    def _smtpd_answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection,
        ):
            # master accepts before smtpd runs: a first byte means smtpd answered
            # (the greeting, or the TLS server's silence until our hello).
            if self.tls is not None and self.tls.implicit:
                return True
            connection.settimeout(2)
            return bool(connection.recv(1))
        return False


class PostfixExporter(_StartedInWith):
    """Debian's prometheus-postfix-exporter reading one PostfixServer's queue and log."""

    def __init__(self, postfix: PostfixServer) -> None:
        if EXPORTER is None:
            _missing(EXPORTER_HINT)
        self.postfix = postfix
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self) -> PostfixExporter:
        assert EXPORTER is not None
        # A restart keeps its port: the URL noc reads stays the same.
        self.port = self.port or free_port()
        self._process = subprocess.Popen(
            [
                EXPORTER,
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--postfix.showq_path={self.postfix.showq}",
                f"--postfix.logfile_path={self.postfix.log_file}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if b"postfix_showq_message_size_bytes_count" in self._get():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("postfix_exporter did not serve its queue metrics")

    def page(self) -> str:
        return self._get().decode()

    def _get(self) -> bytes:
        with urllib.request.urlopen(self.url, timeout=5) as response:
            body: bytes = response.read()
            return body

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
