"""Web traffic detections from http.log, with ssl.log, conn.log, weird.log and files.log.

SUSPICIOUS_USER_AGENT, EXECUTABLE_DOWNLOAD, MULTIPLE_USER_AGENTS, EMPTY_CONNECTIONS,
WEIRD_HTTP_METHOD and PASTEBIN_DOWNLOAD. State lives per (profile, window) and is
dropped when the window closes; the only state across windows is the short-lived
pairing of TLS records with their connections for PASTEBIN_DOWNLOAD over HTTPS
(pairing.py).

This file is imported by slipsd as ``<private package>.http``, never as a top-level
``http``, so it does not shadow the standard library's ``http`` package.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slipsd.events import Event, Flow, TwClosed
from slipsd.modtools import WindowState, powers
from slipsd.module import Module, Option

from .helpers import (
    DomainList,
    UserAgentList,
    clip,
    is_ip_literal,
    list_problem,
    load_entries,
    normalize_host,
    os_family,
    transfer_hosts,
)
from .pairing import TlsPairs
from .state import REPORTS_PER_WINDOW, PasteVisit, Window

LISTS = {"user_agents_file": "suspicious_user_agents.txt",
         "search_engines_file": "search_engines.txt", "paste_sites_file": "paste_sites.txt"}
EXECUTABLE_TYPES = [
    "application/x-dosexec", "application/x-msdownload", "application/x-ms-dos-executable",
    "application/x-msdos-program", "application/vnd.microsoft.portable-executable",
    "application/x-executable", "application/x-elf", "application/x-sharedlib",
    "application/x-mach-o-executable",
]
# files.log sources whose executables http.log does not already show (HTTP files are
# reported from http.log, once); SMB shares and mail attachments move executables routinely.
FILE_SOURCES = frozenset({"FTP_DATA", "IRC_DATA"})
EMPTY_HOSTS_CAP = 100  # search-engine hosts counted per profile and window
UIDS_KEPT = 10


class Http(Module):
    name = "http"
    description = ("HTTP: suspicious and multiple user agents, executable and paste-site "
                   "downloads, empty requests to search engines, unknown methods")
    channels = ("new_http", "new_ssl", "new_flow", "new_weird", "new_downloaded_file")
    evidence_types = ("SUSPICIOUS_USER_AGENT", "EXECUTABLE_DOWNLOAD", "MULTIPLE_USER_AGENTS",
                      "EMPTY_CONNECTIONS", "WEIRD_HTTP_METHOD", "PASTEBIN_DOWNLOAD")
    options = {
        "user_agents_file": Option(str, "", "list of suspicious user agents; empty: the "
                                   "bundled etc/suspicious_user_agents.txt"),
        "executable_mime_types": Option(list, EXECUTABLE_TYPES, "response MIME types that "
                                        "make EXECUTABLE_DOWNLOAD"),
        "user_agent_families": Option(int, 1, "operating systems the user agents of one "
                                      "profile may claim in a window; more make "
                                      "MULTIPLE_USER_AGENTS"),
        "empty_connections": Option(int, 4, "empty requests to one search engine host in a "
                                    "window that make EMPTY_CONNECTIONS (then x10, x100...)"),
        "search_engines_file": Option(str, "", "list of search engine domains; empty: the "
                                      "bundled etc/search_engines.txt"),
        "pastebin_bytes": Option(int, 700, "bytes downloaded from a paste site that make "
                                 "PASTEBIN_DOWNLOAD"),
        "paste_sites_file": Option(str, "", "list of paste site domains; empty: the bundled "
                                   "etc/paste_sites.txt"),
    }

    @classmethod
    def unavailable(cls, config: Mapping[str, Any]) -> str | None:
        problems = [p for key, default in LISTS.items()
                    if (p := list_problem(config[key], default))]
        return "; ".join(problems) or None

    def setup(self, config: Mapping[str, Any]) -> None:
        self.agents = UserAgentList(load_entries(config["user_agents_file"],
                                                 LISTS["user_agents_file"]))
        self.engines = DomainList(load_entries(config["search_engines_file"],
                                               LISTS["search_engines_file"]))
        self.pastes = DomainList(load_entries(config["paste_sites_file"],
                                              LISTS["paste_sites_file"]))
        self.exec_types = frozenset(t.lower() for t in config["executable_mime_types"])
        self.families = max(1, config["user_agent_families"])
        self.empty_threshold = max(1, config["empty_connections"])
        self.paste_bytes = max(0, config["pastebin_bytes"])
        self.windows: WindowState[dict[str, Window]] = WindowState(dict)
        self.pairs: TlsPairs[PasteVisit] = TlsPairs(self.paste_bytes)

    # -- window state --------------------------------------------------------------------

    def _window(self, profile: str, tw: int) -> Window:
        per_profile = self.windows.get(tw)
        w = per_profile.get(profile)
        if w is None:
            w = per_profile[profile] = Window()
        return w

    def on_tw_closed(self, event: TwClosed) -> None:
        self.windows.learn(event)
        per_profile = self.windows.state.get(event["tw"])
        if per_profile is not None:
            per_profile.pop(event["profile"], None)
            if not per_profile:
                del self.windows.state[event["tw"]]
        # Late records may have recreated state of windows closed earlier.
        self.windows.forget_ending_before(float(event["start"]))

    # -- http.log ------------------------------------------------------------------------

    def on_new_http(self, ev: Event) -> None:
        e: Mapping[str, Any] = ev
        if not e["saddr"]:
            return
        w = self._window(e["profile"], e["tw"])
        host = normalize_host(e.get("host"))
        agent = e.get("user_agent")
        if isinstance(agent, str):
            self._check_agent(e, w, agent, host)
            self._track_family(e, w, agent)
        self._check_executable(e, w, host)
        self._check_empty(e, w, host)
        size = e.get("response_body_len")
        site = self.pastes.match(host)
        if site is not None and isinstance(size, int) and size >= self.paste_bytes:
            self._report_paste(PasteVisit(e["ts"], e["tw"], e["profile"], e["saddr"], e["daddr"],
                                    site, host, e["uid"]), size, tls=False)

    def _check_agent(self, e: Mapping[str, Any], w: Window, agent: str, host: str) -> None:
        entry = self.agents.match(agent)
        if entry is None or not w.first("SUSPICIOUS_USER_AGENT", e["daddr"], entry):
            return
        server = f"{e['daddr']} ({clip(host, 60)})" if host else e["daddr"]
        listed = "an empty value" if entry == "=" else f"'{clip(entry, 40)}'"
        self.ctx.evidence(
            "SUSPICIOUS_USER_AGENT", attacker=e["saddr"], victim=e["daddr"],
            threat_level="medium", confidence=0.8,
            description=(f"{e['saddr']} sent an HTTP request to {server} with the user agent "
                         f"'{clip(agent)}', listed as suspicious ({listed})"),
            ts=e["ts"], tw=e["tw"], profile=e["profile"], uids=(e["uid"],), key=entry,
        )

    def _track_family(self, e: Mapping[str, Any], w: Window, agent: str) -> None:
        family = os_family(agent)
        if family is None or family in w.families:
            return
        w.families[family] = (agent, e["uid"])
        if len(w.families) != self.families + 1:
            return  # reported once per window, when the limit is first passed
        seen = "; ".join(f"{name}: '{clip(ua, 60)}'" for name, (ua, _) in w.families.items())
        self.ctx.evidence(
            "MULTIPLE_USER_AGENTS", attacker=e["saddr"], victim="",
            threat_level="low", confidence=0.7,
            description=(f"{e['saddr']} used HTTP user agents of {len(w.families)} operating "
                         f"systems in one window ({seen})"),
            ts=e["ts"], tw=e["tw"], profile=e["profile"],
            uids=tuple(uid for _, uid in w.families.values()), key="",
        )

    def _check_executable(self, e: Mapping[str, Any], w: Window, host: str) -> None:
        mimes = e.get("resp_mime_types")
        if not isinstance(mimes, list):
            return
        mime = next((m for m in mimes if isinstance(m, str) and m.lower() in self.exec_types),
                    None)
        victim = e["daddr"]
        # Gated by name, not address: a CDN serves one file from many addresses.
        if mime is None or not w.first("EXECUTABLE_DOWNLOAD", "", host or victim):
            return
        # Droppers fetch by address; software vendors serve by name.
        bare = not host or is_ip_literal(host)
        uri = clip(str(e.get("uri") or ""), 80)
        size = e.get("response_body_len")
        self.ctx.evidence(
            "EXECUTABLE_DOWNLOAD", attacker=e["saddr"], victim=victim,
            threat_level="medium" if bare else "low", confidence=1.0,
            description=(f"{e['saddr']} downloaded an executable ({mime}, {size} bytes) "
                         f"from http://{clip(host, 60) or victim}{uri} ({victim})"),
            ts=e["ts"], tw=e["tw"], profile=e["profile"], uids=(e["uid"],),
            key=host or victim,
        )

    def _check_empty(self, e: Mapping[str, Any], w: Window, host: str) -> None:
        if e.get("uri") not in (None, "", "/") or e.get("request_body_len") or \
                e.get("response_body_len"):
            return
        if self.engines.match(host) is None:
            return
        entry = w.empty.get(host)
        if entry is None:
            if len(w.empty) >= EMPTY_HOSTS_CAP:
                return
            entry = w.empty[host] = [0, []]
        before = entry[0]
        entry[0] += 1
        if len(entry[1]) < UIDS_KEPT:
            entry[1].append(e["uid"])
        reported = w.reported.setdefault("EMPTY_CONNECTIONS", set())
        for level in powers(self.empty_threshold, before, entry[0]):
            if host not in reported:
                if len(reported) >= REPORTS_PER_WINDOW:
                    return
                reported.add(host)
            # 0.5 at the threshold, 1.0 from ten times it
            confidence = min(1.0, 0.5 + 0.5 * (level / self.empty_threshold - 1) / 9)
            self.ctx.evidence(
                "EMPTY_CONNECTIONS", attacker=e["saddr"], victim=e["daddr"],
                threat_level="low", confidence=round(confidence, 3),
                description=(f"{e['saddr']} made {level} empty HTTP requests (no path, no "
                             f"data either way) to the search engine {clip(host, 60)} "
                             f"(last at {e['daddr']})"),
                ts=e["ts"], tw=e["tw"], profile=e["profile"], uids=tuple(entry[1]),
                key=f"{host}:{level}",
            )

    # -- paste sites over HTTPS: ssl.log + conn.log, in either order ------------------------

    def on_new_ssl(self, ev: Event) -> None:
        e: Mapping[str, Any] = ev
        name = normalize_host(e.get("server_name"))
        site = self.pastes.match(name)
        if site is None or not e["uid"] or not e["saddr"]:
            self.pairs.advance(e["ts"])
            return
        tls = PasteVisit(e["ts"], e["tw"], e["profile"], e["saddr"], e["daddr"], site, name,
                         e["uid"])
        size = self.pairs.tls(tls.uid, tls.ts, tls)
        if size is not None:
            self._report_paste(tls, size, tls=True)

    def on_new_flow(self, flow: Flow) -> None:
        tls = self.pairs.conn(flow)
        if tls is not None:
            self._report_paste(tls, flow["dbytes"], tls=True)

    def _report_paste(self, t: PasteVisit, size: int, tls: bool) -> None:
        w = self._window(t.profile, t.tw)
        if not w.first("PASTEBIN_DOWNLOAD", "", t.site):  # one per site, any address
            return
        how = ("over TLS (handshake included)" if tls else "over plain HTTP")
        self.ctx.evidence(
            "PASTEBIN_DOWNLOAD", attacker=t.saddr, victim=t.daddr,
            threat_level="low", confidence=0.5 if tls else 0.8,
            description=(f"{t.saddr} downloaded {size} bytes from the paste site "
                         f"{clip(t.server_name, 60)} ({t.daddr}) {how}"),
            ts=t.ts, tw=t.tw, profile=t.profile, uids=(t.uid,), key=t.site,
        )

    # -- weird.log and files.log ---------------------------------------------------------

    def on_new_weird(self, ev: Event) -> None:
        e: Mapping[str, Any] = ev
        if e.get("name") != "unknown_HTTP_method" or not e["saddr"]:
            return
        method = clip(str(e.get("addl") or ""), 40)
        w = self._window(e["profile"], e["tw"])
        if not w.first("WEIRD_HTTP_METHOD", e["daddr"], method):
            return
        self.ctx.evidence(
            "WEIRD_HTTP_METHOD", attacker=e["saddr"], victim=e["daddr"],
            threat_level="medium", confidence=0.8,
            description=(f"{e['saddr']} sent an HTTP request with the unknown method "
                         f"'{method}' to {e['daddr']}:{e['dport']}"),
            ts=e["ts"], tw=e["tw"], profile=e["profile"], uids=(e["uid"],), key=method,
        )

    def on_new_downloaded_file(self, ev: Event) -> None:
        e: Mapping[str, Any] = ev
        source = e.get("source")
        mime = e.get("mime_type")
        if source not in FILE_SOURCES or not isinstance(mime, str) or \
                mime.lower() not in self.exec_types:
            return
        receiver, sender = transfer_hosts(e)
        if not receiver or not self._window(receiver, e["tw"]).first(
                "EXECUTABLE_DOWNLOAD", sender, source):
            return
        self.ctx.evidence(
            "EXECUTABLE_DOWNLOAD", attacker=receiver, victim=sender,
            threat_level="medium" if source == "IRC_DATA" else "low", confidence=1.0,
            description=(f"{receiver} downloaded an executable ({mime}, "
                         f"{e.get('seen_bytes')} bytes) from {sender} over {source}"),
            ts=e["ts"], tw=e["tw"], profile=receiver, uids=(e["uid"],), key=source,
        )
