"""A real Postfix in a temp dir on a loopback port, and postfix_exporter reading it.

A minimal fixture of this helper's own (the SMTP probes' tests/postfix.py may replace
it): one Postfix instance per `PostfixServer`, with its own config, queue and data
directories and its own log file (maillog_file, through postlogd, so no syslog is
needed). Its relayhost is a closed loopback port, so every message it takes for a
remote domain is deferred; it relays for no client (mynetworks excludes loopback), so
a RCPT to a remote domain over SMTP is rejected 554 and logged.

`PostfixExporter` runs Debian's prometheus-postfix-exporter against the instance:
`--postfix.showq_path` points it at this queue's showq socket (the default is the
system's /var/spool/postfix/public/showq) and `--postfix.logfile_path` at its log.

Postfix starts only as root (master drops to the postfix user); elsewhere the tests
skip, unless NOC_REQUIRE_POSTFIX=1 (CI sets it), where they fail.
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
from pathlib import Path

import pytest

POSTFIX_HINT = "postfix not usable here: apt-get install postfix, and run as root"
EXPORTER_HINT = "postfix_exporter not installed: apt-get install prometheus-postfix-exporter"
READY_TIMEOUT_SECONDS = 15.0
EXPORTER = shutil.which("prometheus-postfix-exporter") or shutil.which("postfix_exporter")

_MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
"""


def _require(ok: bool, hint: str, variable: str) -> None:
    if ok:
        return
    if os.environ.get(variable) == "1":
        pytest.fail(hint)
    pytest.skip(hint)


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostfixServer:
    def __init__(self, *, tls: tuple[bytes, bytes] | None = None) -> None:
        """`tls`: the certificate chain and the key (PEM) smtpd offers after STARTTLS."""
        _require(
            shutil.which("postfix", path="/usr/sbin:/usr/bin") is not None and os.geteuid() == 0,
            POSTFIX_HINT,
            "NOC_REQUIRE_POSTFIX",
        )
        # Not under pytest's tmp_path: its parents are private to root, and Postfix's
        # daemons, as the postfix user, must reach the queue.
        self.directory = Path(tempfile.mkdtemp(prefix="noc-postfix-"))
        self.directory.chmod(0o755)
        self.conf = self.directory / "conf"
        self.queue = self.directory / "queue"
        self.data = self.directory / "data"
        self.maillog = self.directory / "maillog"
        self.port = 0
        self._tls = tls

    @property
    def showq(self) -> Path:
        return self.queue / "public" / "showq"

    def start(self) -> None:
        for path in (self.conf, self.queue, self.data):
            path.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data, "postfix")
        self.port = free_tcp_port()
        closed = free_tcp_port()  # nothing listens there: remote mail is deferred
        tls = ""
        if self._tls is not None:
            cert, key = self.directory / "cert.pem", self.directory / "key.pem"
            cert.write_bytes(self._tls[0])
            key.write_bytes(self._tls[1])
            key.chmod(0o600)
            tls = (
                f"smtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\n"
                "smtpd_tls_security_level = may\n"
            )
        (self.conf / "main.cf").write_text(
            "compatibility_level = 3.6\n"
            f"queue_directory = {self.queue}\n"
            f"data_directory = {self.data}\n"
            "mail_owner = postfix\nsetgid_group = postdrop\n"
            "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n"
            "myhostname = mx.noc-test.example\nmydestination =\n"
            "mynetworks = 192.0.2.0/24\n"
            f"relayhost = [127.0.0.1]:{closed}\n"
            f"maillog_file = {self.maillog}\nmaillog_file_prefixes = {self.directory}\n"
            # postfix_exporter recognises only the "postfix/..." program names.
            "syslog_name = postfix\n"
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
            "alias_maps =\nalias_database =\n" + tls
        )
        (self.conf / "master.cf").write_text(_MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        self._postfix("start")
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.showq.exists() and self._answers():
                return
            time.sleep(0.05)
        log = self.maillog.read_text(errors="replace") if self.maillog.exists() else ""
        self.stop()
        raise RuntimeError(f"postfix did not start; its log:\n{log}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                return conn.recv(3) == b"220"
        except OSError:
            return False

    def _postfix(self, command: str) -> None:
        subprocess.run(
            ["postfix", "-c", str(self.conf), command],
            check=command == "start",
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        pid_file = self.queue / "pid" / "master.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        self._postfix("stop")
        if pid is None:
            shutil.rmtree(self.directory, ignore_errors=True)
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
        shutil.rmtree(self.directory, ignore_errors=True)

    def submit(self, recipient: str, sender: str = "noc@mx.noc-test.example") -> None:
        """A message through sendmail (postdrop): queued, then deferred for a remote domain."""
        message = f"From: {sender}\nTo: {recipient}\nSubject: noc queue test\n\nbody\n"
        subprocess.run(
            ["sendmail", "-C", str(self.conf), "-f", sender, recipient],
            input=message.encode(),
            check=True,
            timeout=30,
        )

    def queue_entries(self) -> list[dict[str, object]]:
        out = subprocess.run(
            ["postqueue", "-c", str(self.conf), "-j"], capture_output=True, check=True, timeout=30
        ).stdout.decode()
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def hold(self, queue_id: str) -> None:
        subprocess.run(
            ["postsuper", "-c", str(self.conf), "-h", queue_id], capture_output=True, check=True
        )

    def reject(self, count: int) -> None:
        """`count` RCPTs to a remote domain over SMTP: each is refused 554 and logged."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as client:
            client.ehlo("client.noc-test.example")
            for _ in range(count):
                with contextlib.suppress(smtplib.SMTPRecipientsRefused):
                    client.sendmail(
                        "a@client.example", ["x@elsewhere.example"], "Subject: x\r\n\r\n"
                    )


class PostfixExporter:
    def __init__(self, postfix: PostfixServer) -> None:
        _require(EXPORTER is not None, EXPORTER_HINT, "NOC_REQUIRE_POSTFIX")
        self.postfix = postfix
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self) -> None:
        assert EXPORTER is not None
        # A restart keeps its port: the URL noc reads stays the same.
        self.port = self.port or free_tcp_port()
        self._process = subprocess.Popen(
            [
                EXPORTER,
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--postfix.showq_path={self.postfix.showq}",
                f"--postfix.logfile_path={self.postfix.maillog}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url, timeout=1) as response:
                    if b"postfix_showq_message_size_bytes_count" in response.read():
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("postfix_exporter did not serve its queue metrics")

    def page(self) -> str:
        with urllib.request.urlopen(self.url, timeout=5) as response:
            return str(response.read().decode())

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
