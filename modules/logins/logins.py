"""Logins seen in SSH and SMTP: successes, password guessing, refused credentials.

ssh.log says whether an SSH authentication succeeded; without it (Zeek could not
tell, or the log is not collected) the size of the conn record stands in. A conn
record is held until ssh.log has moved past it in traffic time (or a window has
closed past it, or the run ends), since channels interleave only per batch; an
input without ssh.log (Argus, nfdump) has it judged at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slipsd.events import Flow, TwClosed
from slipsd.modtools import CappedSet, TrafficClock, WindowState, powers
from slipsd.module import Module, Option

from .helpers import (
    ESTABLISHED,
    Burst,
    Counter,
    SshFlow,
    Window,
    keep_uid,
    smtp_auth_failed,
    software_version,
)

SSH_WAIT = 60.0  # traffic seconds a conn record waits for its ssh.log record
SINGLE_LOGINS = 3  # servers reported one by one per client and window
SERVERS_CAP = 10_000  # distinct servers counted per client and window
VERSIONS_CAP = 5  # distinct SSH client versions remembered (and reported) per host


class Logins(Module):
    name = "logins"
    description = ("SSH and SMTP logins: successes, password guessing, client changes, refused "
                   "credentials (SSH_SUCCESSFUL_LOGIN, SSH_PASSWORD_GUESSING, "
                   "MULTIPLE_SSH_CLIENT_VERSIONS, SMTP_BAD_LOGIN, SMTP_LOGIN_BRUTEFORCE)")
    channels = ("new_input", "new_ssh", "new_smtp", "new_software", "new_flow")
    evidence_types = ("SSH_SUCCESSFUL_LOGIN", "SSH_PASSWORD_GUESSING",
                      "MULTIPLE_SSH_CLIENT_VERSIONS", "SMTP_BAD_LOGIN", "SMTP_LOGIN_BRUTEFORCE")
    options = {
        "ssh_login_bytes": Option(int, 4290, "without ssh.log, a port-22 connection counts as a "
                                  "successful login when both directions carried more bytes"),
        "ssh_guesses": Option(int, 10, "failed SSH attempts from one client to one server in "
                              "a window that make SSH_PASSWORD_GUESSING (then x10, x100, ...)"),
        "smtp_bruteforce": Option(int, 3, "refused SMTP logins within smtp_seconds that make "
                                  "SMTP_LOGIN_BRUTEFORCE"),
        "smtp_seconds": Option(float, 10.0, "time span for smtp_bruteforce"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.login_bytes = int(config["ssh_login_bytes"])
        self.guesses = max(1, int(config["ssh_guesses"]))
        self.burst_size = max(1, int(config["smtp_bruteforce"]))
        self.burst_seconds = float(config["smtp_seconds"])
        self.ssh_decided = CappedSet(100_000)  # uids ssh.log gave a verdict for
        self.waiting: TrafficClock[SshFlow] = TrafficClock(("ssh",), self._judge_flow, 50_000)
        self.windows: WindowState[Window] = WindowState(Window)
        self.versions: dict[str, list[str]] = {}

    # ---- SSH ----

    def on_new_input(self, event: Mapping[str, Any]) -> None:
        self.waiting.provided(event["log_types"])

    def on_new_ssh(self, event: Mapping[str, Any]) -> None:
        success = event.get("auth_success")
        client, server, uid = event["saddr"], event["daddr"], event["uid"]
        if success is True:
            self.ssh_decided.add(uid)
            self._login(client, server, event["ts"], event["tw"], event["profile"], uid, True)
        elif success is False:
            self.ssh_decided.add(uid)
            attempts = event.get("auth_attempts")
            tries = attempts if isinstance(attempts, int) and attempts > 0 else 1
            self._guess(client, server, event["ts"], event["tw"], event["profile"], uid,
                        tries, "ssh.log")
        if event["ts"] > self.waiting.horizon:
            self.waiting.tick("ssh", event["ts"])

    def on_new_flow(self, flow: Flow) -> None:
        if flow["proto"] != "tcp" or flow["state"] not in ESTABLISHED:
            return
        if flow["dport"] != 22 and "ssh" not in flow["service"].lower():
            return
        if flow["sbytes"] <= 0 or flow["dbytes"] <= 0 or flow["uid"] in self.ssh_decided:
            return  # no SSH exchange happened, or ssh.log already judged it
        item = SshFlow(flow["ts"], flow["uid"], flow["saddr"], flow["daddr"], flow["tw"],
                       flow["profile"], flow["sbytes"], flow["dbytes"])
        self.waiting.hold(flow["ts"] + SSH_WAIT, item)

    def _judge_flow(self, item: SshFlow) -> None:
        if item.uid in self.ssh_decided:
            return
        if item.sbytes > self.login_bytes and item.dbytes > self.login_bytes:
            self._login(item.saddr, item.daddr, item.ts, item.tw, item.profile, item.uid, False,
                        f"judged by size: {item.sbytes} bytes sent and {item.dbytes} received, "
                        f"both over {self.login_bytes} (no ssh.log verdict)")
        else:
            self._guess(item.saddr, item.daddr, item.ts, item.tw, item.profile, item.uid, 1,
                        "conn.log")

    def _login(self, client: str, server: str, ts: float, tw: int, profile: str, uid: str,
               confirmed: bool, detail: str = "") -> None:
        servers = self.windows.get(tw).logins.setdefault(client, {})
        if server in servers or len(servers) >= SERVERS_CAP:
            return
        servers[server] = None
        count = len(servers)
        level, confidence = ("low", 1.0) if confirmed else ("info", 0.5)
        if count <= SINGLE_LOGINS:
            self.ctx.evidence(
                "SSH_SUCCESSFUL_LOGIN", attacker=client, victim=server, threat_level=level,
                confidence=confidence,
                description=(f"successful SSH login from {client} to {server} "
                             + ("(ssh.log auth_success)" if confirmed else detail)),
                ts=ts, tw=tw, profile=profile, uids=(uid,), key="",
            )
        for total in powers(10, count - 1, count):
            sample = ", ".join(list(servers)[:SINGLE_LOGINS])
            self.ctx.evidence(
                "SSH_SUCCESSFUL_LOGIN", attacker=client, victim="", threat_level=level,
                confidence=confidence,
                description=(f"{client} logged in over SSH to {total} servers in this window "
                             f"(first: {sample})"),
                ts=ts, tw=tw, profile=profile, uids=(uid,), key=f"servers>={total}",
            )

    def _guess(self, client: str, server: str, ts: float, tw: int, profile: str, uid: str,
               tries: int, source: str) -> None:
        counter = self.windows.get(tw).guesses.setdefault((client, server, source), Counter())
        before = counter.count
        counter.count += tries
        keep_uid(counter.uids, uid)
        from_log = source == "ssh.log"
        what = "failed SSH authentication attempts" if from_log else \
            "short SSH connections (no successful login by size)"
        for level in powers(self.guesses, before, counter.count):
            self.ctx.evidence(
                "SSH_PASSWORD_GUESSING", attacker=client, victim=server,
                threat_level="high" if from_log else "medium",
                confidence=0.9 if from_log else 0.5,
                description=(f"{counter.count} {what} from {client} to {server} in this "
                             f"window ({source}; threshold {level})"),
                ts=ts, tw=tw, profile=profile, uids=tuple(counter.uids),
                key=f"{source}:{level}",
            )

    def on_new_software(self, event: Mapping[str, Any]) -> None:
        if event.get("software_type") != "SSH::CLIENT" or not event["saddr"]:
            return
        version = software_version(event)
        known = self.versions.setdefault(event["saddr"], [])
        if not version or version in known or len(known) >= VERSIONS_CAP:
            return
        known.append(version)
        if len(known) < 2:
            return
        host = event["saddr"]
        self.ctx.evidence(
            "MULTIPLE_SSH_CLIENT_VERSIONS", attacker=host, victim="", threat_level="low",
            confidence=0.8,
            description=(f"{host} used {len(known)} different SSH client versions: "
                         + ", ".join(known)),
            ts=event["ts"], tw=event["tw"], profile=event["profile"], uids=(),
            key=f"versions:{len(known)}",
        )

    # ---- SMTP ----

    def on_new_smtp(self, event: Mapping[str, Any]) -> None:
        if not smtp_auth_failed(event.get("last_reply")):
            return
        client, server, ts, tw = event["saddr"], event["daddr"], event["ts"], event["tw"]
        win = self.windows.get(tw)
        failures = win.smtp_failures.setdefault((client, server), Counter())
        failures.count += 1
        keep_uid(failures.uids, event["uid"])
        reply = str(event.get("last_reply", "")).strip()
        for level in powers(1, failures.count - 1, failures.count):
            self.ctx.evidence(
                "SMTP_BAD_LOGIN", attacker=client, victim=server, threat_level="low",
                confidence=0.8,
                description=(f"SMTP server {server} refused the login of {client} "
                             f"({failures.count} refusal{'s' if failures.count > 1 else ''} "
                             f"in this window; reply: {reply[:80]})"),
                ts=ts, tw=tw, profile=event["profile"], uids=tuple(failures.uids),
                key=f"failures>={level}",
            )
        burst = win.bursts.setdefault((client, server), Burst())
        burst.add(ts, self.burst_size)
        keep_uid(burst.uids, event["uid"])
        times = burst.times
        if burst.reported or len(times) < self.burst_size:
            return
        if times[-1] - times[0] <= self.burst_seconds:
            burst.reported = True
            self.ctx.evidence(
                "SMTP_LOGIN_BRUTEFORCE", attacker=client, victim=server, threat_level="high",
                confidence=0.8,
                description=(f"{client} had {self.burst_size} logins refused by SMTP server "
                             f"{server} within {times[-1] - times[0]:.1f} s "
                             f"(threshold {self.burst_size} in {self.burst_seconds:g} s)"),
                ts=ts, tw=tw, profile=event["profile"], uids=tuple(burst.uids), key="",
            )

    # ---- windows and end ----

    def on_tw_closed(self, event: TwClosed) -> None:
        end = float(event["end"])
        if self.waiting.settle(end):
            self.windows.learn(event)
            self.windows.forget_ending_before(end - SSH_WAIT - self.windows.width)

    def shutdown(self) -> None:
        self.waiting.finish()
