"""VirusTotal scores of the public IPs and domains a run meets, saved on the IPs' info.

An enrichment module: it reports no evidence. Each new public IP is looked up
once (``vt`` on its info); each domain once, and its scores go on the info of
the public addresses it was seen at (``vt_domains``): the A/AAAA answers of a
DNS query for it, or the server of a TLS connection (SNI) or HTTP request
(Host) naming it. A domain seen at no public address is not looked up: it
would spend the small daily quota on a result nothing can show.

Lookups run in a thread of their own (see _worker.py), so the event handlers
never wait for the network. Answers are cached across runs, which also makes
a replayed run (a restarted module host) ask VirusTotal nothing new.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from slipsd.events import AnyEvent, NewIp
from slipsd.module import Module, Option
from slipsd.netinfo import is_public, parse_ip

from ._client import Client, Pacer, read_api_key
from ._worker import Lookups, Settings

IPS_PER_DOMAIN = 32  # CDN names resolve to many addresses; the first ones are enough
DOMAINS_PER_IP = 16  # a shared hosting address may serve thousands of names
# Reserved and local-only names: they never resolve on the internet.
LOCAL_SUFFIXES = (".local", ".lan", ".home", ".internal", ".intranet", ".localdomain",
                  ".localhost", ".arpa", ".corp", ".test", ".example", ".invalid")
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def domain_name(text: Any) -> str:
    """A public-looking domain name from a log field, lower case; "" for anything else
    (IP literals, single labels, local suffixes, service names like _ldap._tcp)."""
    if not isinstance(text, str):
        return ""
    name = text.strip().rstrip(".").lower()
    if "." not in name or len(name) > 253 or parse_ip(name) is not None:
        return ""
    if name.endswith(LOCAL_SUFFIXES):
        return ""
    labels = name.split(".")
    if labels[-1].isdigit() or not all(LABEL.fullmatch(label) for label in labels):
        return ""
    return name


def http_host(text: Any) -> str:
    """The name in an HTTP Host header, without its port."""
    if isinstance(text, str) and text.count(":") == 1:
        text = text.split(":", 1)[0]
    return domain_name(text)


class VirusTotal(Module):
    name = "virustotal"
    description = "VirusTotal scores of new public IPs and domains, kept on the IPs' info"
    channels = ("new_ip", "new_dns", "new_ssl", "new_http")
    evidence_types = ()
    options = {
        "api_key_file": Option(str, "", "file holding the API key: one line, 64 hex characters"),
        "url": Option(str, "https://www.virustotal.com/api/v3", "base URL of the v3 API"),
        "requests_per_minute": Option(float, 4.0, "requests are spaced 60/this seconds apart"),
        "daily_quota": Option(int, 500, "requests per UTC day, then wait for the next; 0: none"),
        "cache_ttl": Option(float, 259200.0, "seconds an answer is reused, across runs"),
        "timeout": Option(float, 20.0, "seconds one HTTP request may take"),
        "retries": Option(int, 3, "failed requests (5xx, network) in a row before an item "
                                  "goes to the back of the queue"),
        "backoff": Option(float, 15.0, "first wait after a failure or an unexplained 429, "
                                       "doubled on each one in a row"),
        "max_backoff": Option(float, 300.0, "longest wait after failures"),
        "domains": Option(bool, True, "also look up domains (DNS, TLS SNI, HTTP Host)"),
    }

    @classmethod
    def unavailable(cls, config: Mapping[str, Any]) -> str | None:
        try:
            read_api_key(config["api_key_file"])
        except ValueError as exc:
            return str(exc)
        for key in ("requests_per_minute", "timeout"):
            if config[key] <= 0:
                return f"{key} must be above 0"
        for key in ("daily_quota", "cache_ttl", "backoff", "max_backoff"):
            if config[key] < 0:
                return f"{key} must not be negative"
        if config["retries"] < 1:
            return "retries must be at least 1"
        if not str(config["url"]).startswith(("http://", "https://")):
            return f"url {config['url']!r} is not an http(s) URL"
        return None

    def setup(self, config: Mapping[str, Any]) -> None:
        self.check_domains = bool(config["domains"])
        self.seen: set[str] = set()
        # Domain results travel to addresses; both maps are capped (see the constants).
        self.lock = threading.Lock()
        self.ips_of: dict[str, list[str]] = {}
        self.domains_of: dict[str, list[str]] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.lookups: Lookups | None = None
        why = self.unavailable(config)
        if why is not None:  # slipsd does not start us then; a test context might
            self.ctx.log.warning("virustotal lookups are off: %s", why)
            return
        client = Client(config["url"], read_api_key(config["api_key_file"]), config["timeout"])
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        pacer = Pacer(self.ctx.data_dir / "pacing.json", config["requests_per_minute"],
                      config["daily_quota"])
        settings = Settings(config["cache_ttl"], config["retries"], config["backoff"],
                            config["max_backoff"])
        self.lookups = Lookups(client, pacer, settings, (self.ctx.cache_get, self.ctx.cache_set),
                               self._deliver, self.ctx.stopping, self.ctx.log)
        self.lookups.start()
        self.ctx.log.info("looking up new public IPs%s on %s: one request every %.1f s, "
                          "%s a day (%d used today)", " and domains" if self.check_domains
                          else "", config["url"], pacer.interval,
                          config["daily_quota"] or "no limit", pacer.used_today())

    def on_new_ip(self, event: NewIp) -> None:
        if self.lookups is not None and is_public(event["ip"]):
            self._want("ip", event["ip"])

    def on_new_dns(self, event: AnyEvent) -> None:
        answers = event.get("answers") or ()
        self._seen_at(domain_name(event.get("query")),
                      [a for a in answers if isinstance(a, str) and is_public(a)])

    def on_new_ssl(self, event: AnyEvent) -> None:
        self._seen_at(domain_name(event.get("server_name")), [event["daddr"]])

    def on_new_http(self, event: AnyEvent) -> None:
        self._seen_at(http_host(event.get("host")), [event["daddr"]])

    def _want(self, kind: str, name: str) -> None:
        key = f"{kind}:{name}"
        if key not in self.seen and self.lookups is not None:
            self.seen.add(key)
            self.lookups.add(kind, name)

    def _seen_at(self, domain: str, ips: Sequence[str]) -> None:
        """``domain`` was met at these addresses: link them, look the domain up once."""
        ips = [ip for ip in ips if is_public(ip)]
        if not domain or not ips or not self.check_domains or self.lookups is None:
            return
        with self.lock:
            known = self.ips_of.setdefault(domain, [])
            new = [ip for ip in dict.fromkeys(ips) if ip not in known]
            new = new[:max(0, IPS_PER_DOMAIN - len(known))]
            known.extend(new)
            for ip in new:
                names = self.domains_of.setdefault(ip, [])
                if len(names) < DOMAINS_PER_IP:
                    names.append(domain)
                # The answer may be in already (an earlier sighting): show it here too.
                if domain in self.results:
                    self._publish_domains(ip)
        self._want("domain", domain)

    def _deliver(self, kind: str, name: str, summary: dict[str, Any]) -> None:
        """Called by the lookup thread with an answer (fresh or cached)."""
        if kind == "ip":
            self.ctx.set_ip_info(name, vt=summary)
            return
        with self.lock:
            self.results[name] = summary
            for ip in self.ips_of.get(name, ()):
                self._publish_domains(ip)

    def _publish_domains(self, ip: str) -> None:
        # Written whole each time: only this module writes the field, and the order
        # follows the traffic (the first DOMAINS_PER_IP names met at the address).
        found = {d: self.results[d] for d in self.domains_of.get(ip, ()) if d in self.results}
        if found:
            self.ctx.set_ip_info(ip, vt_domains=found)

    def shutdown(self) -> None:
        if self.lookups is None:
            return
        self.lookups.close()
        counts = self.lookups.counts
        self.ctx.log.info(
            "virustotal: %d requests (%d found, %d unknown), %d answers from the cache, "
            "%d failed requests, %d throttled, %d skipped, %d given up, %d not done",
            counts["requests"], counts["found"], counts["unknown"], counts["cached"],
            counts["failed_requests"], counts["throttled"], counts["skipped"],
            counts["given_up"], counts["not_done"])
