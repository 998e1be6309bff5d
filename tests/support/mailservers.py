"""Real mail servers for the tests of what comes back: a private Postfix and a private
Dovecot, both on 127.0.0.1 only, started from Debian's packages with configurations of
their own in a temporary folder, and an aiosmtpd sink standing for the receiving side.

Postfix relays mail for RECIPIENT_DOMAIN to the sink, which answers by local part:
`reject@` gets 550 5.1.1, `defer@` gets 451 4.2.0, anyone else is accepted. Postfix then
writes real DSNs to the envelope sender; mail for BOUNCE_DOMAIN (the VERP bounce
addresses) lands in one Maildir, which Dovecot serves over IMAP with TLS.

The servers last the whole session (Postfix takes about two seconds to start, most of it
making its queue folders; Dovecot a few hundredths); tests keep apart by using envelope
senders of their own. Without the binaries,
or without root (Postfix's master must start as root), the tests skip, except under
CI=true, where that is a failure: CI must never skip them silently.
"""

from __future__ import annotations

import email
import email.policy
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from .delivery_sink import Sink, running, self_signed
from .serving import free_port

RECIPIENT_DOMAIN = "example.net"
BOUNCE_DOMAIN = "bounce.kabar.example.id"
SINK_REPLIES = {
    "reject": "550 5.1.1 <{address}>: user unknown",
    "defer": "451 4.2.0 <{address}>: mailbox busy, try later",
}
# Where Debian puts the server binaries; root's PATH has them, another user's may not.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


class PolicySink(Sink):
    """The receiving side: answers each RCPT by the address's local part (SINK_REPLIES)."""

    def _fault(self, address: str) -> str | None:
        reply = SINK_REPLIES.get(address.partition("@")[0].lower())
        return f"rcpt:{reply.format(address=address)}" if reply else None


def require(*programs: str) -> dict[str, str]:
    """Paths of the programs; skip without them (fail under CI=true) and without root."""
    found = {name: shutil.which(name, path=SBIN_PATH) for name in programs}
    problems = [f"{name} is not installed" for name, path in found.items() if not path]
    if os.geteuid() != 0:
        problems.append("they must start as root")
    if problems:
        reason = "; ".join(problems) + " (.ci/run installs Postfix and Dovecot)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"real mail servers needed under CI: {reason}")
        pytest.skip(reason)
    return {name: str(path) for name, path in found.items()}


def wait_for_greeting(
    port: int, deadline: float, log: Path, tls: ssl.SSLContext | None = None
) -> None:
    """Until the server on 127.0.0.1:port greets (SMTP 220, IMAP * OK), inside TLS if given."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
                if tls is None:
                    if connection.recv(64):
                        return
                    continue
                with tls.wrap_socket(connection, server_hostname="127.0.0.1") as wrapped:
                    if wrapped.recv(64):
                        return
        except OSError:  # ssl.SSLError is one too: a server not quite up yet
            time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    pytest.fail(f"nothing answered on 127.0.0.1:{port}; log:\n{tail}")


def run_or_fail(command: list[str], log: Path) -> None:
    """Run a server's start command; when it fails, fail the test with its output and log."""
    # A file, not a pipe: the daemon keeps its inherited output open, and reading a pipe
    # to its end would wait for the daemon to exit.
    with tempfile.TemporaryFile() as output:
        done = subprocess.run(
            command, stdout=output, stderr=output, timeout=60, stdin=subprocess.DEVNULL
        )
        output.seek(0)
        said = output.read().decode(errors="replace")
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{said}\n{tail}")


def mail_user() -> pwd.struct_passwd:
    """The postfix user, who owns the Maildir: Postfix's virtual agent refuses to deliver
    as root, and Dovecot reads the same folder as the same user."""
    return pwd.getpwnam("postfix")


def _pids_where(test: Callable[[Path], bool]) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if test(entry):
                    found.append(int(entry.name))
            except OSError:  # it ended while we looked
                continue
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _stop(master: int | None, seconds: float = 10) -> None:
    """TERM to a server's master process, then KILL if it has not gone within `seconds`."""
    if master is None:
        return
    try:
        os.kill(master, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(master):
            return
        time.sleep(0.02)
    _kill([master])


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for whoever adopted the daemon to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


# --- Maildir ----------------------------------------------------------------------------------


def maildir_messages(maildir: Path) -> list[tuple[Path, EmailMessage]]:
    """Every message in new/ and cur/, parsed, oldest name first."""
    files = sorted([*maildir.glob("new/*"), *maildir.glob("cur/*")], key=lambda p: p.name)
    return [(path, parse(path.read_bytes())) for path in files]


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def wait_for_mail(
    maildir: Path, wanted: Callable[[EmailMessage], bool], count: int, timeout: float = 30
) -> list[EmailMessage]:
    """The first `count` messages in the Maildir that `wanted` accepts, polling up to
    `timeout` seconds; fails with what did arrive when fewer came."""
    deadline = time.monotonic() + timeout
    while True:
        found = [message for _, message in maildir_messages(maildir) if wanted(message)]
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(found) >= count, f"{len(found)} of {count} messages came in {timeout} s"
    return found


# --- Postfix ----------------------------------------------------------------------------------


@dataclass
class Postfix:
    config_dir: Path  # queue, data, Maildir and log sit beside it
    port: int
    maildir: Path  # where mail for BOUNCE_DOMAIN lands
    log: Path
    startup_seconds: float = 0.0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def postfix_main_cf(root: Path, port: int, sink_port: int) -> str:
    user = mail_user()
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": root / "queue",
        "data_directory": root / "data",
        "mail_owner": user.pw_name,
        "myhostname": "mta.kabar.example.id",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mydestination": "",
        "mynetworks": "127.0.0.0/8",
        "local_recipient_maps": "",
        "alias_maps": "",
        "alias_database": "",
        "smtpd_peername_lookup": "no",
        # Only the test domain goes anywhere, and only to the sink: nothing leaves 127.0.0.1.
        "transport_maps": f"inline:{{{RECIPIENT_DOMAIN}=smtp:[127.0.0.1]:{sink_port}}}",
        "default_transport": "error:only the test domain is delivered here",
        "smtp_dns_support_level": "disabled",
        "virtual_mailbox_domains": BOUNCE_DOMAIN,
        "virtual_mailbox_base": root,
        "virtual_mailbox_maps": "static:bounces/",  # the trailing slash makes it a Maildir
        "virtual_uid_maps": f"static:{user.pw_uid}",
        "virtual_gid_maps": f"static:{user.pw_gid}",
        "virtual_minimum_uid": str(user.pw_uid),
        # virtual(8) exits at start-up when this is smaller than message_size_limit.
        "message_size_limit": "10240000",
        "virtual_mailbox_limit": "0",
        # A 4xx bounces after its one try, so soft-bounce DSNs come in seconds, not days.
        "maximal_queue_lifetime": "0",
        "bounce_queue_lifetime": "0",
        "queue_run_delay": "1s",
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "smtp_connect_timeout": "5s",
        "maillog_file": root / "maillog",
        "maillog_file_prefixes": root,
    }
    return "".join(f"{name} = {value}\n" for name, value in settings.items())


# Only what the tests use; no chroot, so nothing needs copying into the queue folder.
POSTFIX_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix n - n 60 1 pickup
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
showq     unix n - n - - showq
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
virtual   unix - n n - - virtual
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def _postfix_processes(config_dir: Path) -> list[int]:
    """Our instance's processes: the master hands MAIL_CONFIG=<its folder> to each child."""
    marker = f"MAIL_CONFIG={config_dir}".encode()
    return _pids_where(lambda entry: marker in (entry / "environ").read_bytes().split(b"\0"))


@contextmanager
def postfix_running(root: Path, sink_port: int) -> Iterator[Postfix]:
    """A private Postfix instance under `root`, serving SMTP on a free 127.0.0.1 port."""
    postfix = require("postfix", "postconf")["postfix"]
    user = mail_user()
    port = free_port()
    config_dir = root / "etc"
    config_dir.mkdir(parents=True)
    (config_dir / "main.cf").write_text(postfix_main_cf(root, port, sink_port))
    (config_dir / "master.cf").write_text(POSTFIX_MASTER_CF.format(port=port))
    maildir = root / "bounces"
    for part in ("tmp", "new", "cur"):
        (maildir / part).mkdir(parents=True)
    for folder in (maildir, *maildir.iterdir()):
        os.chown(folder, user.pw_uid, user.pw_gid)
    # `postfix start` makes the folders inside the queue, with their owners, but not the
    # queue folder itself.
    (root / "queue").mkdir()
    server = Postfix(config_dir, port, maildir, root / "maillog")
    started = time.monotonic()
    run_or_fail([postfix, "-c", str(config_dir), "start"], server.log)
    try:
        wait_for_greeting(port, time.monotonic() + 30, server.log)
        server.startup_seconds = time.monotonic() - started
        yield server
    finally:
        # What `postfix stop` does, without its one-second polls: TERM to the master,
        # which ends its children; then anything of ours still there is killed.
        _stop(_read_pid(root / "queue" / "pid" / "master.pid"))
        _kill(_postfix_processes(config_dir))


# --- Dovecot ----------------------------------------------------------------------------------


@dataclass
class Dovecot:
    port: int  # IMAP with TLS from the first byte (imaps)
    user: str
    password: str
    cafile: Path  # the self-signed certificate, to trust as its own CA
    log: Path
    startup_seconds: float = 0.0

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cafile))


DOVECOT_CONF = """instance_name = kabar-test-{port}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = {uid}
last_valid_uid = {uid}
mail_location = maildir:{maildir}
namespace inbox {{
  inbox = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
service stats {{
  inet_listener http {{
    port = 0
  }}
}}
"""


def _children(pid: int) -> list[int]:
    """`pid`'s descendants, found by their parent ids."""
    parents: dict[int, int] = {}
    for child in _pids_where(lambda entry: True):
        try:
            stat = Path(f"/proc/{child}/stat").read_text()
        except OSError:
            continue
        parents[child] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found += kids
        frontier += kids
    return found


@contextmanager
def dovecot_running(root: Path, maildir: Path, password: str) -> Iterator[Dovecot]:
    """A private Dovecot serving `maildir` as the INBOX of user "kabar" over IMAP+TLS."""
    dovecot = require("dovecot")["dovecot"]
    user = mail_user()
    port = free_port()
    root.mkdir()
    home = root / "home"
    home.mkdir()
    os.chown(home, user.pw_uid, user.pw_gid)
    (root / "state").mkdir()
    cert, key = self_signed(root)
    (root / "passwd").write_text(f"kabar:{{PLAIN}}{password}::::::\n")
    conf = root / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            root=root,
            port=port,
            cert=cert,
            key=key,
            uid=user.pw_uid,
            gid=user.pw_gid,
            maildir=maildir,
        )
    )
    server = Dovecot(port, "kabar", password, cert, root / "dovecot.log")
    started = time.monotonic()
    run_or_fail([dovecot, "-c", str(conf)], server.log)
    master = _read_pid(root / "run" / "master.pid")
    try:
        wait_for_greeting(port, time.monotonic() + 30, server.log, server.client_context())
        server.startup_seconds = time.monotonic() - started
        yield server
    finally:
        # As `dovecot stop` does, without its waits: TERM to the master, then kill what
        # of its processes is left.
        leftovers = _children(master) if master else []
        _stop(master)
        _kill([pid for pid in leftovers if _alive(pid)])


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mail_root() -> Iterator[Path]:
    """A folder for the servers outside pytest's own (which only root may enter): the
    postfix user writes the Maildir inside it."""
    root = Path(tempfile.mkdtemp(prefix="kabar-mail-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[tuple[PolicySink, Controller]]:
    sink = PolicySink()
    with running(sink) as controller:
        yield sink, controller


@pytest.fixture(scope="session")
def postfix(mail_root: Path, mail_sink: tuple[PolicySink, Controller]) -> Iterator[Postfix]:
    with postfix_running(mail_root / "postfix", mail_sink[1].port) as server:
        yield server


@pytest.fixture(scope="session")
def dovecot(mail_root: Path, postfix: Postfix) -> Iterator[Dovecot]:
    with dovecot_running(mail_root / "dovecot", postfix.maildir, "rahasia-uji") as server:
        yield server
