"""TLS certificates that do not fit the server they come from.

SELF_SIGNED_CERTIFICATE: the server's certificate is signed by itself (or by an
untrusted self-signed root). INCOMPATIBLE_CERTIFICATE_ORG: the certificate names
a well-known organisation (slipsd.orgs) that owns neither the server's address
nor the name the client asked for. CN_SNI_MISMATCH: the certificate's names do
not cover the SNI the client sent.

ssl.log says which certificate the server sent (the first of cert_chain_fps or
cert_chain_fuids); x509.log, when present, adds its subject alternative names.
An x509 record comes a little after its ssl record (traffic time), and channels
interleave per batch, so an ssl record whose certificate is unknown waits until
the x509 log has moved ``hold_seconds`` past it, a window closes past it, or the
run ends; an input without x509.log (new_input) has it judged from ssl.log at once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slipsd.events import TwClosed
from slipsd.modtools import TrafficClock, WindowState
from slipsd.module import Module, Option
from slipsd.netinfo import is_private
from slipsd.orgs import load_organizations

from .certs import (
    Cert,
    Lru,
    any_covers,
    base_domain,
    cert_from_x509,
    common_names,
    issued_by_public_ca,
    leaf_id,
    looks_like_hostname,
    self_signed_status,
)
from .owners import Owners
from .records import Facts as _Facts
from .records import TlsRecord as _Tls

CERTS_CAP = 20_000  # certificates remembered (Zeek >= 5 logs each only once a day)
WAITING_CAP = 20_000  # ssl records waiting for their certificate
FACTS_CAP = 4096  # (certificate, names, server) combinations whose facts are kept
QUIET_CAP = 8192  # ... with validation status and Zeek's SNI verdict, that report nothing
# Public CAs of companies that also have their own certificates: their name in an
# issuer says nothing about who the certificate is for.
PUBLIC_CAS = ["O=Google Trust Services", "O=Amazon", "CN=Microsoft Azure", "O=Cloudflare"]
# Validation failures about time only: the chain itself is trusted.
TIME_ONLY = ("certificate has expired", "certificate is not yet valid")


@dataclass
class _Seen:
    keys: set[tuple[str, str, str]] = field(default_factory=set)
    per_type: dict[str, int] = field(default_factory=dict)


class Tls(Module):
    name = "tls"
    description = ("TLS certificates that are self-signed, claim a well-known organisation "
                   "the server is not, or do not cover the SNI (SELF_SIGNED_CERTIFICATE, "
                   "INCOMPATIBLE_CERTIFICATE_ORG, CN_SNI_MISMATCH)")
    channels = ("new_input", "new_ssl", "new_x509")
    evidence_types = ("SELF_SIGNED_CERTIFICATE", "INCOMPATIBLE_CERTIFICATE_ORG",
                      "CN_SNI_MISMATCH")
    options = {
        "hold_seconds": Option(float, 60.0, "traffic seconds an ssl record waits for its "
                               "certificate's x509 record"),
        "public_ca_issuers": Option(list, PUBLIC_CAS, "issuer attributes (O=... or CN=..., a "
                                    "whole value or its first words) of public CAs run by "
                                    "well-known organisations: such an issuer names nobody"),
        "evidence_limit": Option(int, 5, "most evidence of one type per source and window"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.hold = max(0.0, float(config["hold_seconds"]))
        self.public_cas = [str(p) for p in config["public_ca_issuers"]]
        self.limit = max(1, int(config["evidence_limit"]))
        self.owners = Owners(load_organizations())
        self.certs: Lru[str, Cert] = Lru(CERTS_CAP)
        self.waiting: TrafficClock[Mapping[str, Any]] = TrafficClock(
            ("x509",), self._judge, WAITING_CAP)
        self.windows: WindowState[dict[str, _Seen]] = WindowState(dict)
        self.facts: Lru[tuple[Any, ...], _Facts] = Lru(FACTS_CAP)
        # Whether a record makes evidence depends on these only (not on the client), and
        # most records make none: such combinations skip the judgement.
        self.quiet: OrderedDict[tuple[Any, ...], None] = OrderedDict()  # an LRU, inline
        self.tried = 0  # reports attempted, to tell quiet combinations

    # ---- events ----

    def on_new_input(self, event: Mapping[str, Any]) -> None:
        self.waiting.provided(event["log_types"])

    def on_new_x509(self, event: Mapping[str, Any]) -> None:
        found = cert_from_x509(event)
        if found is not None and event.get("client_cert") is not True:
            self.certs.put(*found)
        ts = float(event["ts"])
        if ts > self.waiting.horizon:
            self.waiting.tick("x509", ts)

    def on_new_ssl(self, event: Mapping[str, Any]) -> None:
        leaf = leaf_id(event)
        if not leaf or leaf in self.certs:
            self._judge(event, leaf)
            return
        waiting, deadline = self.waiting, event["ts"] + self.hold
        if deadline <= waiting.horizon:  # TrafficClock.hold, inline
            self._judge(event, leaf)
        else:
            waiting.push(deadline, event, self._judge)

    def on_tw_closed(self, event: TwClosed) -> None:
        self.windows.learn(event)
        self.waiting.settle(float(event["end"]))
        self.windows.forget_ending_before(float(event["start"]) - self.hold)

    def shutdown(self) -> None:
        self.waiting.finish()

    # ---- judgement ----

    def _judge(self, event: Mapping[str, Any], leaf: str | None = None) -> None:
        if leaf is None:
            leaf = leaf_id(event)
        cert = self.certs.get(leaf) if leaf else None
        get = event.get
        subject, issuer, name, status = (get("subject"), get("issuer"), get("server_name"),
                                         get("validation_status"))
        key = (cert, subject if isinstance(subject, str) else "",
               issuer if isinstance(issuer, str) else "",
               name if isinstance(name, str) else "", event["daddr"])
        status = status if isinstance(status, str) else ""
        zeek_says = get("sni_matches_cert")  # only its being True or False counts
        verdict = (key, status, zeek_says if isinstance(zeek_says, bool) else None)
        quiet = self.quiet
        if verdict in quiet:
            quiet.move_to_end(verdict)
            return
        f = self.facts.get(key)
        if f is None:
            f = self._facts(*key)
            self.facts.put(key, f)
        tls = _Tls(event, cert, f.subjects, f.issuers, f.cns, f.names, f.sni, status,
                   f.covered, f.likely_covered, f.sni_owner, f.server_owners)
        tried = self.tried
        self._self_signed(tls)
        self._incompatible_org(tls)
        self._mismatch(tls)
        if self.tried == tried:
            quiet[verdict] = None
            if len(quiet) > QUIET_CAP:
                quiet.popitem(last=False)

    def _facts(self, cert: Cert | None, subject: str, issuer: str, server_name: str,
               daddr: str) -> _Facts:
        subjects = _distinct(subject, cert.subject if cert else "")
        issuers = _distinct(issuer, cert.issuer if cert else "")
        cns = tuple(dict.fromkeys(cn for s in subjects for cn in common_names(s)))
        names = tuple(dict.fromkeys(cns + (cert.sans if cert else ())))
        sni = server_name.lower().rstrip(".")
        sni = sni if looks_like_hostname(sni) else ""
        covered = bool(sni) and any_covers(names, sni)
        likely = covered or (bool(sni) and cert is None and any(
            base_domain(cn) == base_domain(sni) for cn in cns if looks_like_hostname(cn)))
        owners = self.owners
        server_owners = owners.of_server(daddr, self.ctx.geoip)
        return _Facts(subjects, issuers, cns, names, sni, covered, likely,
                      owners.of_domain(sni) if sni else None, server_owners)

    def _self_signed(self, tls: _Tls) -> None:
        kind = self_signed_status(tls.status)
        if not kind and not tls.status and tls.self_issued:
            kind = "issuer"  # without Zeek's validation, the leaf is its own issuer
        if not kind:
            return
        ev = tls.event
        confidence = {"leaf": 0.8, "issuer": 0.6, "chain": 0.5}[kind]
        reason = (f"validation status '{tls.status}'" if tls.status
                  else "subject and issuer are the same")
        self._report(
            "SELF_SIGNED_CERTIFICATE", ev, "", confidence,
            # Printers, routers and lab servers use self-signed certificates all the time.
            "info" if is_private(ev["daddr"]) else "low",
            f"{ev['saddr']} received a self-signed certificate from {ev['daddr']}:{ev['dport']}"
            f"{_for(tls.sni)} (subject {_dn(tls.subjects)}): {reason}",
        )

    def _incompatible_org(self, tls: _Tls) -> None:
        ev = tls.event
        # organisation -> (where the certificate names it, that subject or issuer)
        claimed: dict[str, tuple[str, str]] = {}
        for subject in tls.subjects:
            for org in self.owners.of_subject(subject):
                claimed.setdefault(org, ("subject", subject))
        for issuer in tls.issuers:
            org = self.owners.named_in(issuer)
            if org and not issued_by_public_ca(issuer, self.public_cas):
                claimed.setdefault(org, ("issuer", issuer))
        if not claimed:
            return
        subject_orgs = {org for org, (where, _) in claimed.items() if where == "subject"}
        for org, (where, text) in claimed.items():
            if org in tls.server_owners or org == tls.sni_owner:
                continue
            confidence = (0.9 if where == "subject" else 0.7) - (0 if tls.sni else 0.3)
            if where == "issuer" and subject_orgs:
                pass  # one organisation's CA signing another organisation's certificate
            elif self._untrusted(tls):
                pass  # a chain nobody vouches for, naming a famous organisation
            elif tls.likely_covered or (tls.sni and not tls.sans_known
                                        and tls.sni_owner is None):
                # The certificate is (or, its SANs unknown, may be) for the name asked,
                # and its chain is trusted or was not checked: a CDN or host serving
                # the organisation's own name that the shipped data does not list.
                continue
            self._report(
                "INCOMPATIBLE_CERTIFICATE_ORG", ev, f"{org}|{tls.sni}", confidence, "medium",
                f"{ev['daddr']}:{ev['dport']} sent {ev['saddr']} a certificate naming "
                f"{org.capitalize()} ({where} {text}){_for(tls.sni)}, but neither the address "
                f"nor the name belongs to {org.capitalize()}",
            )

    def _mismatch(self, tls: _Tls) -> None:
        ev = tls.event
        if not tls.sni:
            return
        zeek_says = ev.get("sni_matches_cert")
        if zeek_says is True or tls.covered or (not tls.names and zeek_says is not False):
            return
        confidence = 0.8
        if not tls.sans_known and zeek_says is not False:
            # Only the CN is known. A name of the SNI's domain, or an organisation's own
            # certificate for its own name or from its own address, most likely lists
            # the SNI among the alternative names we cannot see; and where the data
            # knows none of the names' owners it cannot tell either.
            hostnames = [cn for cn in tls.cns if looks_like_hostname(cn)]
            cn_owners = {o for o in map(self.owners.of_domain, hostnames) if o}
            if tls.likely_covered or cn_owners & (tls.server_owners | {tls.sni_owner}) or (
                    hostnames and not cn_owners and tls.sni_owner is None):
                return
            confidence = 0.5
        shown = ", ".join(tls.names[:3]) + (f" and {len(tls.names) - 3} more"
                                            if len(tls.names) > 3 else "")
        self._report(
            "CN_SNI_MISMATCH", ev, tls.sni, confidence,
            "info" if is_private(ev["daddr"]) else "low",  # devices reached by another name
            f"{ev['saddr']} asked {ev['daddr']}:{ev['dport']} for {tls.sni} but the "
            f"certificate is for {shown or 'other names (Zeek: sni_matches_cert false)'}",
        )

    def _untrusted(self, tls: _Tls) -> bool:
        """Zeek found the chain untrusted, or did not check and the leaf signed itself."""
        status = tls.status.lower()
        if status:
            return status != "ok" and status not in TIME_ONLY
        return tls.self_issued

    # ---- reporting ----

    def _report(self, kind: str, ev: Mapping[str, Any], key: str, confidence: float,
                level: str, description: str) -> None:
        self.tried += 1
        profile, tw = ev["profile"], ev["tw"]
        seen = self.windows.get(tw).setdefault(profile, _Seen())
        ident = (kind, ev["daddr"], key)
        if ident in seen.keys or seen.per_type.get(kind, 0) >= self.limit:
            return
        seen.keys.add(ident)
        seen.per_type[kind] = seen.per_type.get(kind, 0) + 1
        self.ctx.evidence(
            kind, attacker=ev["saddr"], victim=ev["daddr"], threat_level=level,
            confidence=round(confidence, 3), description=description, ts=ev["ts"], tw=tw,
            profile=profile, uids=(ev["uid"],), key=key,
        )


def _distinct(*texts: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for t in texts if t))


def _dn(texts: tuple[str, ...]) -> str:
    return texts[0] if texts else "unknown"


def _for(sni: str) -> str:
    return f" for {sni}" if sni else " without SNI"
