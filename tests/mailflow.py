"""Real mail flow for canary tests: a Dovecot (IMAP over TLS, SASL for Postfix) and a
Postfix submission service that delivers into Dovecot's maildirs, in one temp dir.

    from mailflow import MailFlow

- `MailFlow(ca, seeds=[...], sender=(user, password))` writes a Dovecot 2.3 config
  (its own base_dir, a passwd-file userdb, maildirs under the temp dir, IMAPS on a
  free loopback port with a trustme leaf) and runs `dovecot -F` as a child.
- `flow.region(name, header_checks=..., junk=...)` starts a Postfix (tests/postfix.py)
  whose only listener is a submission service: STARTTLS required, SASL AUTH through
  Dovecot's auth socket (the standard Debian pairing), relaying for authenticated
  clients only, and delivering the seed domain with virtual(8) straight into the seed's
  maildir. `header_checks` are regexp lines (the faults: DISCARD, HOLD, a PREPENDed
  Authentication-Results); `junk=True` files the seed's mail into its `.Junk` folder,
  as a receiver's spam filter would.
- `flow.stop()` ends every Postfix and Dovecot it started and removes the temp dir.

Everything runs as root here (Postfix's master and Dovecot drop privileges
themselves); without dovecot the tests skip with the install hint, unless
NOC_REQUIRE_POSTFIX=1 (CI): then they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from postfix import PostfixServer, PostfixTls, free_port, postfix_binary
from processes import stop_tree

INSTALL_HINT = "dovecot not installed: apt-get install dovecot-imapd"
DOVECOT = "/usr/sbin/dovecot"
READY_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 10.0
SEED_DOMAIN = "seed.test"
# The maildirs belong to one unprivileged user: Postfix's virtual(8) writes as it and
# Dovecot's imap reads as it.
MAIL_UID = MAIL_GID = 65534


def dovecot_binary() -> str:
    if not Path(DOVECOT).is_file():
        if os.environ.get("NOC_REQUIRE_POSTFIX") == "1":
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    postfix_binary()  # skips likewise without Postfix or root
    return DOVECOT


class _SubmissionPostfix(PostfixServer):
    """tests/postfix.py's instance with the virtual(8) delivery agent added."""

    def _write_config(self) -> None:
        super()._write_config()
        master = self.config_directory / "master.cf"
        master.write_text(master.read_text() + "virtual unix - n n - - virtual\n")


@dataclass
class MailFlow:
    ca: trustme.CA
    seeds: tuple[str, ...] = ("seed",)
    sender: tuple[str, str] = ("canary@example.com", "canary-secret")
    seed_password: str = "seed-secret"
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="noc-mailflow-")))
    imap_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    postfixes: list[PostfixServer] = field(default_factory=list)

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    @property
    def mail_root(self) -> Path:
        return self.root / "mail"

    @property
    def auth_socket(self) -> Path:
        return self.root / "run" / "auth-postfix"

    def address(self, seed: str) -> str:
        return f"{seed}@{SEED_DOMAIN}"

    def maildir(self, seed: str) -> Path:
        return self.mail_root / SEED_DOMAIN / seed / "Maildir"

    def start(self) -> MailFlow:
        binary = dovecot_binary()
        # The mail owner and Dovecot's unprivileged processes reach files through here.
        self.root.chmod(0o755)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        leaf = self.ca.issue_cert("127.0.0.1", "imap.test.example", "smtp.test.example")
        leaf.private_key_pem.write_to_path(str(self.root / "key.pem"))
        leaf.cert_chain_pems[0].write_to_path(str(self.root / "cert.pem"))
        for seed in self.seeds:
            for sub in ("cur", "new", "tmp", ".Junk/cur", ".Junk/new", ".Junk/tmp"):
                (self.maildir(seed) / sub).mkdir(parents=True, exist_ok=True)
        for path in [self.mail_root, *self.mail_root.rglob("*")]:
            os.chown(path, MAIL_UID, MAIL_GID)
        users = [(self.address(s), self.seed_password) for s in self.seeds]
        users.append(self.sender)
        (self.root / "passwd").write_text(
            "".join(
                f"{user}:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_GID}::{self.root}::\n"
                for user, password in users
            )
        )
        self.imap_port = free_port()
        config = self.root / "dovecot.conf"
        config.write_text(self._config())
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "dovecot.stderr").open("wb"),
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _config(self) -> str:
        root = self.root
        return f"""\
base_dir = {root}/run
state_dir = {root}/state
instance_name = noc-test-{root.name}
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
# A wrong password is a test's fault case: answered at once, not after 2 s.
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:{self.mail_root}/%d/%n/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Junk {{
    special_use = \\Junk
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imap_port}
    ssl = yes
  }}
}}
service auth {{
  unix_listener {self.auth_socket.name} {{
    mode = 0666
  }}
}}
"""

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = (self.root / "dovecot.stderr").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"dovecot exited: {stderr.strip()}")
            if self.auth_socket.exists():
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", self.imap_port), timeout=1),
                ):
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on port {self.imap_port}")

    def region(
        self, name: str, *, header_checks: tuple[str, ...] = (), junk: bool = False
    ) -> PostfixServer:
        """A region's submission Postfix, delivering to the seeds' maildirs."""
        workdir = self.root / f"postfix-{name}"
        workdir.mkdir()
        mailboxes = ", ".join(
            f"{self.address(s)}={SEED_DOMAIN}/{s}/Maildir/" + (".Junk/" if junk else "")
            for s in self.seeds
        )
        main = {
            "myhostname": f"{name}.test.example",
            "smtpd_tls_security_level": "encrypt",
            "smtpd_tls_auth_only": "yes",
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "dovecot",
            "smtpd_sasl_path": str(self.auth_socket),
            "smtpd_sasl_authenticated_header": "yes",
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject",
            "smtpd_recipient_restrictions": "permit_sasl_authenticated, reject",
            "virtual_mailbox_domains": SEED_DOMAIN,
            "virtual_mailbox_base": str(self.mail_root),
            "virtual_mailbox_maps": f"inline:{{ {mailboxes} }}",
            "virtual_uid_maps": f"static:{MAIL_UID}",
            "virtual_gid_maps": f"static:{MAIL_GID}",
        }
        if header_checks:
            rules = workdir / "header_checks"
            rules.write_text("".join(line + "\n" for line in header_checks))
            main["header_checks"] = f"regexp:{rules}"
        server = _SubmissionPostfix(
            workdir=workdir,
            main=main,
            tls=PostfixTls(
                (self.root / "cert.pem").read_bytes(), (self.root / "key.pem").read_bytes()
            ),
            hostname=f"{name}.test.example",
        )
        self.postfixes.append(server)
        return server.start()

    def release_held(self, server: PostfixServer) -> None:
        """Release every held message and flush the queue: a slow delivery ends."""
        config = str(server.config_directory)
        subprocess.run(["postsuper", "-c", config, "-H", "ALL"], check=True, capture_output=True)
        subprocess.run(["postqueue", "-c", config, "-f"], check=True, capture_output=True)

    def stop(self) -> None:
        for server in self.postfixes:
            server.stop()
        self.postfixes.clear()
        process, self.process = self.process, None
        if process is not None:
            stop_tree(process, STOP_TIMEOUT_SECONDS)
        shutil.rmtree(self.root, ignore_errors=True)
