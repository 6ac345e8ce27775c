"""Traffic that touches indicators listed in threat-intelligence feeds.

Local feed files and downloaded remote feeds (docs/feeds.md) are loaded into
an in-memory index (slipsd.intel) at setup; every lookup is O(1), whatever the
size of the feeds. A background thread downloads remote feeds again every
update period and swaps in a new index; handlers read ``self.index`` once per
event, so an event never sees half of an update.

Each listed indicator is reported once per profile and window, and at most
``evidence_limit`` indicators per profile, type and window.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slipsd.events import Event, Flow, TwClosed
from slipsd.intel import LEVEL_RANK, FeedConfig, FeedSet, Index, Match, normalize_url
from slipsd.intel._format import ip_key
from slipsd.module import Module, Option
from slipsd.netinfo import is_public, shipped_data

from .lookups import MISSING, Lookups

_TLS_FIELDS = (("ja3", "client JA3"), ("ja3s", "server JA3S"), ("ja4", "client JA4"),
               ("ja4s", "server JA4S"))
_HASH_FIELDS = ("sha256", "sha1", "md5")


def _path(text: str) -> Path:
    """Absolute as given; relative to slips' shipped data folder (etc/) otherwise."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else shipped_data(text)


def _confidence(match: Match) -> float:
    """Exact matches are sure; an address in a listed network, a URL listed without
    its query and a subdomain of a listed domain less so (feeds list whole
    ranges and parent domains that also hold innocent hosts)."""
    if match.exact:
        return 1.0
    return 0.6 if match.kind == "domain" else 0.8


def _port(flow: Flow) -> str:
    return f"{flow['dport']}/{flow['proto']}"


def _first(value: Any) -> str:
    return value[0] if isinstance(value, list) and value and isinstance(value[0], str) else ""


class ThreatIntelligence(Module):
    name = "threat_intelligence"
    description = "Traffic to, from or about indicators listed in threat-intelligence feeds"
    channels = ("new_flow", "new_dns", "new_http", "new_ssl", "new_downloaded_file")
    evidence_types = ("BLACKLISTED_IP", "BLACKLISTED_DOMAIN", "BLACKLISTED_DNS_ANSWER",
                      "BLACKLISTED_URL", "BLACKLISTED_ASN", "MALICIOUS_FILE_HASH",
                      "MALICIOUS_TLS_FINGERPRINT")
    options = {
        "local_feeds": Option(list, ["feeds"], "feed files or folders (relative: to the "
                              "shipped data folder, where 'feeds' holds the shipped feeds)"),
        "threat_level": Option(str, "medium", "threat level of local lines that give none"),
        "remote_feeds": Option(str, "", "file listing remote feeds, one "
                               "'url,threat_level,tags' a line; empty: none"),
        "update_period": Option(float, 86400.0, "seconds before a remote feed is asked again"),
        "retry_period": Option(float, 3600.0, "seconds before a failed download is retried"),
        "download_timeout": Option(float, 20.0, "seconds to connect, per read, and for a "
                                   "whole download of one feed"),
        "max_download_mb": Option(float, 100.0, "largest remote feed accepted, in MB"),
        "evidence_limit": Option(int, 10, "most indicators reported per type, profile and "
                                 "window"),
    }

    @classmethod
    def unavailable(cls, config: Mapping[str, Any]) -> str | None:
        if str(config["threat_level"]).lower() not in LEVEL_RANK:
            return f"threat_level {config['threat_level']!r}: use one of {', '.join(LEVEL_RANK)}"
        remote = str(config["remote_feeds"])
        if remote and not _path(remote).is_file():
            return f"remote_feeds {_path(remote)}: no such file"
        return None

    def setup(self, config: Mapping[str, Any]) -> None:
        self.limit = int(config["evidence_limit"])
        remote = str(config["remote_feeds"])
        self.feeds = FeedSet(FeedConfig(
            local=tuple(_path(p) for p in config["local_feeds"]),
            threat_level=str(config["threat_level"]).lower(),
            remote_list=_path(remote) if remote else None,
            cache=self.ctx.data_dir / "feeds" if remote else None,
            update_period=float(config["update_period"]),
            retry_period=float(config["retry_period"]),
            timeout=float(config["download_timeout"]),
            max_bytes=int(float(config["max_download_mb"]) * 2**20),
        ))
        # (tw) -> (profile, type) -> keys reported; dropped when the window closes.
        self.seen: dict[int, dict[tuple[str, str], set[str]]] = {}
        self.index = Index()
        self._lookups = Lookups(self.index)
        self.feeds.refresh()
        self.reload()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh_loop, name="feed-refresh",
                                        daemon=True)
        self._thread.start()

    def reload(self) -> None:
        """Build a new index from the feeds and swap it in."""
        index, report = self.feeds.build()
        for message in report.messages[:20]:
            self.ctx.log.warning("feed problem: %s", message)
        self.ctx.log.info("%s; %s", report.summary(),
                          ", ".join(f"{n} {k}" for k, n in index.counts().items() if n))
        self.report = report
        self.index = index

    def _refresh_loop(self) -> None:
        config = self.feeds.config
        wake = max(1.0, min(config.update_period, config.retry_period, 300.0))
        while not self._stop.wait(wake) and not self.ctx.stopping.is_set():
            try:
                self.feeds.refresh()
                if self.feeds.changed():
                    self.reload()
            except Exception:  # a bad refresh must not end the updates of a long run
                self.ctx.log.exception("refreshing the feeds failed")

    def shutdown(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.feeds.config.timeout + 5)

    def on_tw_closed(self, event: TwClosed) -> None:
        for tw in [t for t in self.seen if t <= event["tw"]]:
            del self.seen[tw]

    def _report(self, kind: str, event: Event, match: Match, *, attacker: str, victim: str,
                what: str, confidence: float) -> None:
        tw = event["tw"]
        key = match.indicator if match.exact else f"{match.indicator} (inexact)"
        keys = self.seen.setdefault(tw, {}).setdefault((attacker, kind), set())
        if key in keys or len(keys) >= self.limit:
            return
        keys.add(key)
        self.ctx.evidence(
            kind, attacker=attacker, victim=victim, threat_level=match.source.threat_level,
            confidence=confidence, description=f"{what}, {match.listed_in()}",
            ts=event["ts"], tw=tw, profile=attacker, uids=(event["uid"],) if event["uid"] else (),
            key=f"{match.kind}:{key}",
        )

    def _current(self) -> Lookups:
        """Lookups of the index in use (read once per event, see the module's doc)."""
        lookups = self._lookups
        if lookups.index is not self.index:
            lookups = self._lookups = Lookups(self.index)
        return lookups

    def on_new_flow(self, flow: Flow) -> None:
        lookups = self._lookups
        if lookups.index is not self.index:
            lookups = self._current()
        index = lookups.index
        profile, saddr, daddr = flow["profile"], flow["saddr"], flow["daddr"]
        other = daddr if profile == saddr else saddr
        if lookups.has_ips:
            ips = lookups.ips
            match = ips.get(other, MISSING)
            if match is MISSING:
                match = lookups.ip(other)
            if match is not None:
                inside = "" if match.exact else f" (in {match.indicator})"
                self._report("BLACKLISTED_IP", flow, match, attacker=profile, victim=other,
                             what=f"{profile} connected to {other}{inside} on {_port(flow)}",
                             confidence=_confidence(match))
            match = ips.get(profile, MISSING)
            if match is MISSING:
                match = lookups.ip(profile)
            if match is not None:
                inside = "" if match.exact else f" (in {match.indicator})"
                self._report("BLACKLISTED_IP", flow, match, attacker=profile, victim=other,
                             what=f"traffic from {profile}{inside} to {other} on {_port(flow)}",
                             confidence=_confidence(match))
        if index.asns and other and is_public(other):
            asn = self.ctx.geoip.asn(other)
            match = index.asn(asn[0]) if asn is not None else None
            if match is not None and asn is not None:
                org = f" ({asn[1]})" if asn[1] else ""
                self._report("BLACKLISTED_ASN", flow, match, attacker=profile, victim=other,
                             what=f"{profile} connected to {other} on {_port(flow)}, in "
                                  f"AS{asn[0]}{org}", confidence=0.6)

    def _domain(self, event: Event, match: Match, what: str) -> None:
        below = "" if match.exact else f", a subdomain of {match.indicator}"
        self._report("BLACKLISTED_DOMAIN", event, match, attacker=event["profile"],
                     victim=event["daddr"], what=f"{what}{below}",
                     confidence=_confidence(match))

    def on_new_dns(self, event: Event) -> None:
        lookups = self._lookups
        if lookups.index is not self.index:
            lookups = self._current()
        query = str(event.get("query") or "")
        profile = event["profile"]
        if query and lookups.has_domains:
            match = lookups.domains.get(query, MISSING)
            if match is MISSING:
                match = lookups.domain(query)
            if match is not None:
                self._domain(event, match, f"{profile} asked DNS for {query}")
        answers = lookups.answers
        for answer in event.get("answers") or ():
            if not isinstance(answer, str) or not answer:
                continue
            match = answers.get(answer, MISSING)
            if match is MISSING:
                match = lookups.answer(answer)
            if match is not None:
                how = "" if match.exact else f" (in {match.indicator})"
                self._report("BLACKLISTED_DNS_ANSWER", event, match, attacker=profile,
                             victim=event["daddr"],
                             what=f"the DNS answer to {profile} for {query} holds {answer}{how}",
                             confidence=_confidence(match))

    def on_new_http(self, event: Event) -> None:
        lookups = self._current()
        index = lookups.index
        host = str(event.get("host") or "")
        uri = str(event.get("uri") or "")
        profile = event["profile"]
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if name and lookups.has_domains and ip_key(name) is None:
            match = lookups.domain(name)
            if match is not None:
                self._domain(event, match, f"{profile} sent an HTTP request to host {host}")
        if not index.urls:
            return
        if uri.lower().startswith(("http://", "https://")):
            url = normalize_url(uri)
        elif host and uri.startswith("/"):
            url = normalize_url(host + uri, "http")
        else:
            return
        match = index.url(url) if url else None
        if match is not None:
            how = "" if match.exact else f" (the listed URL {match.indicator} with a query)"
            self._report("BLACKLISTED_URL", event, match, attacker=profile,
                         victim=event["daddr"],
                         what=f"{profile} requested http://{url}{how}",
                         confidence=_confidence(match))

    def on_new_ssl(self, event: Event) -> None:
        lookups = self._lookups
        if lookups.index is not self.index:
            lookups = self._current()
        index = lookups.index
        profile, daddr = event["profile"], event["daddr"]
        sni = str(event.get("server_name") or "")
        if sni and lookups.has_domains:
            match = lookups.domains.get(sni, MISSING)
            if match is MISSING:
                match = lookups.domain(sni)
            if match is not None:
                self._domain(event, match, f"{profile} opened TLS to {daddr} for {sni}")
        if not index.fingerprints:
            return
        for field, label in _TLS_FIELDS:
            value = event.get(field)
            match = index.tls_fingerprint(value) if isinstance(value, str) and value else None
            if match is not None:
                self._report("MALICIOUS_TLS_FINGERPRINT", event, match, attacker=profile,
                             victim=daddr, confidence=0.8,
                             what=f"TLS from {profile} to {daddr}:{event['dport']} "
                                  f"has the {label} {value}")

    def on_new_downloaded_file(self, event: Event) -> None:
        index = self.index
        if not any(index.hashes.values()):
            return
        # The receiving host is the one at risk; Zeek >= 6 names the sender with is_orig.
        sent_by_orig = bool(event.get("is_orig"))
        receiver = _first(event.get("rx_hosts")) or (
            event["daddr"] if sent_by_orig else event["saddr"])
        sender = _first(event.get("tx_hosts")) or (
            event["saddr"] if sent_by_orig else event["daddr"])
        if not receiver:
            return
        for field in _HASH_FIELDS:
            value = event.get(field)
            match = index.file_hash(value) if isinstance(value, str) and value else None
            if match is not None:
                kind = event.get("mime_type") or "unknown type"
                self._report("MALICIOUS_FILE_HASH", event, match, attacker=receiver,
                             victim=sender, confidence=1.0,
                             what=f"{receiver} received a file ({kind}) from {sender} "
                                  f"with {field} {value}")
                return  # one file, one evidence, whichever of its hashes is listed
