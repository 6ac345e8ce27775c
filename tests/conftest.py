"""Shared fixtures: a real redis-server on a private socket, real slipsd daemons, waiting,
and the helpers the Zeek reader tests share."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
TEST_MODULES = Path(__file__).resolve().parent / "modules"
sys.path.insert(0, str(REPO / "scripts"))

from slipsd import protocol  # noqa: E402
from slipsd.inputs import FileStats, LineError, ZeekInput  # noqa: E402
from slipsd.store import RedisClient, Store, connect  # noqa: E402

import zeekgen  # noqa: E402


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"corpus dataset {path} is absent (../shared/datasets is not in this checkout)")
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the whole session, on a Unix socket, no TCP port."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (make test installs it)")
    folder = tmp_path_factory.mktemp("redis")
    sock = folder / "redis.sock"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(folder), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"unix://{sock}"
    try:
        connect(url, timeout=10)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def redis_client(redis_url: str) -> RedisClient:
    client = connect(redis_url)
    client.flushall()
    return client


class Daemon:
    """A real slipsd process with its own runtime dir, config and output folder."""

    def __init__(self, root: Path, conf: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.runtime = root / "run"
        self.output = root / "output"
        self.config = root / "etc" / "slips.conf"
        self.config.parent.mkdir(parents=True)
        shutil.copy(REPO / "etc" / "slips.conf", self.config)
        (self.config.parent / "slips.d").mkdir()
        (self.config.parent / "slips.d" / "50-test.conf").write_text(
            f"[daemon]\nruntime_dir = {self.runtime}\nstate_dir = {root / 'state'}\n"
            f"[output]\ndirectory = {self.output}\n" + conf)
        self.socket = self.runtime / protocol.SOCKET_NAME
        self.log = root / "slipsd.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.notifications: list[str] = []

    def start(self, wait: bool = True) -> Daemon:
        notify_path = self.root / "notify.sock"
        notify_path.unlink(missing_ok=True)  # a restarted daemon: a fresh notify socket
        self.notifications = []
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._notify.bind(str(notify_path))
        self._notify.settimeout(0.05)
        env = {**os.environ, **(self.env or {}), "NOTIFY_SOCKET": str(notify_path)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "slipsd", "--config", str(self.config)],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        if wait:
            wait_for(self._ready, 30, f"slipsd READY=1 (log: {self.log})")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"slipsd exited {self.proc.returncode}:\n{self.log_text()}")
        with contextlib.suppress(TimeoutError):
            self.notifications.append(self._notify.recv(4096).decode())
        return any("READY=1" in n.splitlines() for n in self.notifications)

    def drain_notifications(self) -> list[str]:
        """sd_notify messages received since start-up, without waiting."""
        self._notify.setblocking(False)
        try:
            while True:
                self.notifications.append(self._notify.recv(4096).decode())
        except BlockingIOError:
            pass
        finally:
            self._notify.settimeout(0.05)
        return self.notifications

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, timeout: float | None = 30.0) -> protocol.Client:
        return protocol.Client(str(self.socket), timeout=timeout)

    def call(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        with self.client() as client:
            return client.call(cmd, args)

    def analyze(self, path: Path, output: Path | None = None) -> dict[str, Any]:
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        fd = os.open(path, flags)
        args: dict[str, Any] = {"name": str(path)}
        if output is not None:
            args["output"] = str(output)
        try:
            with self.client(timeout=600) as client:
                return client.call("analyze", args, fds=[fd])  # type: ignore[no-any-return]
        finally:
            os.close(fd)

    def redis(self) -> RedisClient:
        return connect(f"unix://{self.runtime / 'redis.sock'}")

    def children(self, role: str | None = None) -> list[dict[str, Any]]:
        kids = self.call("status")["children"]
        return [c for c in kids if role is None or c["role"] == role]

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc is None or self._notify.fileno() < 0:
            return self.proc.returncode if self.proc else 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"slipsd ignored SIGTERM for {timeout}s") from None
        self._notify.setblocking(False)
        while True:
            try:
                self.notifications.append(self._notify.recv(4096).decode())
            except BlockingIOError:
                break
        self._notify.close()
        return self.proc.returncode


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    daemons: list[Daemon] = []

    def factory(conf: str = "", name: str = "d", start: bool = True, **kwargs: Any) -> Daemon:
        daemon = Daemon(tmp_path / name, conf, **kwargs)
        daemons.append(daemon)
        return daemon.start() if start else daemon

    yield factory
    for daemon in daemons:
        daemon.stop()


def module_dirs_conf(enabled: str, extra: str = "") -> str:
    """Config lines enabling modules from the shipped and the tests' module folders."""
    return f"[modules]\ndirectories = builtin, {TEST_MODULES}\nenabled = {enabled}\n{extra}"


def long_conn_log(path: Path, n: int = 2000, seed: int = 7) -> Path:
    """A conn.log where one flow in 100 lasts over an hour."""
    flows = zeekgen.make_conn_flows(n, seed=seed, span=2 * 3600)
    for i, flow in enumerate(flows):
        if i % 100 == 0:
            flow.update(duration=4000.0, conn_state="SF", orig_bytes=100, resp_bytes=100)
    path.mkdir(parents=True, exist_ok=True)
    zeekgen.write_conn_log(str(path / "conn.log"), flows)
    return path


class CorpusRun:
    """One dataset analyzed once per session by a real slipsd with the shipped modules."""

    def __init__(self, run: dict[str, Any], evidence: list[dict[str, Any]], log: str) -> None:
        self.run = run
        self.summary: dict[str, Any] = run["summary"]
        self.evidence = evidence
        self.log = log

    def of(self, module: str) -> list[dict[str, Any]]:
        return [e for e in self.evidence if e["module"] == module]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], CorpusRun]]:
    """``corpus(name)``: the analysis of ../shared/datasets/<name> (skips when absent).

    Every dataset is analyzed once with every default module, as a user would
    run it, and the corpus tests of all modules read the same results.
    """
    root = tmp_path_factory.mktemp("corpus")
    daemon: Daemon | None = None
    runs: dict[str, CorpusRun] = {}

    def analyze(name: str) -> CorpusRun:
        nonlocal daemon
        folder = dataset(name)
        if name not in runs:
            if daemon is None:
                daemon = Daemon(root / "daemon", "").start()
            run = daemon.analyze(folder, root / "out" / name)
            assert run["state"] == "finished" and not run["problem"], run["problem"]
            assert "Traceback" not in daemon.log_text()
            evidence = Store(daemon.redis(), run["id"]).all_evidence()
            runs[name] = CorpusRun(run, evidence, daemon.log_text())
        return runs[name]

    yield analyze
    if daemon is not None:
        daemon.stop()


# --- Zeek log readers (tests/test_zeek_*.py) ------------------------------------

Event = dict[str, Any]


def read(zin: ZeekInput) -> tuple[list[tuple[float, str, Event]], list[LineError]]:
    errors: list[LineError] = []
    records = list(zin.records(errors.append))
    return records, errors


def read_path(path: Path) -> tuple[list[tuple[float, str, Event]], list[LineError]]:
    return read(ZeekInput.from_path(str(path)))


def assert_accounted(files: list[FileStats]) -> None:
    for stats in files:
        assert stats.lines == stats.parsed + stats.bad + stats.meta, stats


def _dns_records() -> list[dict[str, Any]]:
    base = {"uid": "Cdns", "id.orig_h": "10.0.0.5", "id.orig_p": 5353}
    base |= {"id.resp_h": "10.0.0.1", "id.resp_p": 53, "proto": "udp"}
    return [
        base | {"ts": 10.5, "query": "example.com", "qtype_name": "A", "rcode_name": "NOERROR",
                "answers": ["93.184.216.34", "alias.example.com"], "TTLs": [300.0, 60.5],
                "AA": False, "rejected": False},
        base | {"ts": 11.25, "query": "nx.example", "qtype_name": "AAAA", "rcode_name": "NXDOMAIN",
                "answers": None, "TTLs": None, "rtt": 0.0125},
        base | {"ts": 12.0, "query": "txt.example", "qtype_name": "TXT", "rcode_name": "NOERROR",
                "answers": ["v=spf1, -all", "tab\there"], "TTLs": [5.0, 5.0], "trans_id": 7},
    ]  # fmt: skip
