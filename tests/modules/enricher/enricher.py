"""Test module for the context services: ip info, the cross-run cache, data_dir and
``unavailable``. It notes on every new IP whether an earlier run cached it, and
reports one evidence per IP that another field of its own says was seen before."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slipsd.module import Module, Option


class Enricher(Module):
    name = "enricher"
    description = "tags every new IP (a test of ip info and the cache)"
    channels = ("new_ip",)
    evidence_types = ("SEEN_IN_EARLIER_RUN",)
    options = {"required_file": Option(str, "", "refuse to run unless this file exists")}

    @classmethod
    def unavailable(cls, config: Mapping[str, Any]) -> str | None:
        path = config["required_file"]
        if path and not Path(path).is_file():
            return f"required_file {path}: no such file"
        return None

    def setup(self, config: Mapping[str, Any]) -> None:
        self.threads: list[threading.Thread] = []
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        runs = self.ctx.data_dir / "runs"
        runs.write_text(runs.read_text() + "x" if runs.exists() else "x")

    def on_new_ip(self, event: Mapping[str, Any]) -> None:
        ip = event["ip"]
        earlier = self.ctx.cache_get(ip)
        self.ctx.set_ip_info(ip, tag=f"tagged:{ip}", earlier_run=earlier)
        if self.ctx.ip_info(ip).get("tag") != f"tagged:{ip}":
            raise AssertionError("a module must read back its own ip info")
        self.ctx.cache_set(ip, self.ctx.run_id, ttl=3600)
        # From a thread of its own, as enrichment modules that wait on the network do.
        worker = threading.Thread(target=self.ctx.set_ip_info, args=(ip,),
                                  kwargs={"threaded": True})
        worker.start()
        self.threads.append(worker)
        if earlier:
            self.ctx.evidence(
                "SEEN_IN_EARLIER_RUN", attacker=ip, victim="", threat_level="info",
                confidence=1.0, description=f"{ip} was seen in run {earlier}",
                ts=event["ts"], tw=0, key="")

    def shutdown(self) -> None:
        for worker in self.threads:
            worker.join()
        self.ctx.set_ip_info("192.0.2.250", at_shutdown=True)
