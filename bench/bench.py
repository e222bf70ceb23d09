"""Benchmark harness: Postback Monitor against the bare-aiohttp ceiling, in one run.

    python bench/bench.py [--duration 10] [--connections 64] [--json out.json]

Starts a bare aiohttp app (the ceiling for this stack) and Postback Monitor on a
real PostgreSQL (embedded in a temp dir, or DATABASE_URL's server), drives each
with the same wrk load of realistic postback GETs and POSTs from a separate
process, and prints requests/s, p50/p99 latency, CPU seconds per 1,000 hits and
the ratio to the ceiling; then the latency at half the measured maximum rate, the
ratio of --workers 2 to --workers 1, and an exact count check: every 2xx response
is a stored hit. Machines are shared and noisy: compare ratios, not raw numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "postbacks.lua"
ADMIN_TOKEN = "bench-" + secrets.token_hex(12)
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass
class Run:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    errors: int
    cpu_s_per_1000: float
    db_cpu_s_per_1000: float | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and all its descendants (workers)."""
    try:
        proc = psutil.Process(pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def postgres_cpu_seconds(pgdata: Path | None) -> float | None:
    if pgdata is None:
        return None
    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        try:
            if proc.info["name"] == "postgres":
                total += sum(proc.info["cpu_times"][:2])
        except (psutil.NoSuchProcess, TypeError):
            pass
    return total


def parse_wrk(out: str) -> dict[str, Any]:
    def latency(pct: str) -> float:
        match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        return float(match[1]) * UNITS_MS[match[2]] if match else float("nan")

    requests = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": requests,
        "requests_per_s": rps,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
        "errors": sum(int(g) for g in errors.groups()) if errors else 0,
    }


def wrk(url: str, duration: int, connections: int, delay_ms: float = 0.0) -> dict[str, Any]:
    env = {**os.environ, "PBM_DELAY_MS": f"{delay_ms:.3f}"}
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(LUA), url],
        capture_output=True,
        text=True,
        env=env,
        timeout=duration + 60,
        check=True,
    ).stdout
    return parse_wrk(out)


def measure(
    name: str,
    pid: int,
    url: str,
    args: argparse.Namespace,
    pgdata: Path | None,
    delay_ms: float = 0.0,
) -> Run:
    cpu0, db0 = cpu_seconds(pid), postgres_cpu_seconds(pgdata)
    result = wrk(url, args.duration, args.connections, delay_ms)
    cpu1, db1 = cpu_seconds(pid), postgres_cpu_seconds(pgdata)
    per_1000 = 1000 / max(1, result["requests"])
    return Run(
        name=name,
        cpu_s_per_1000=(cpu1 - cpu0) * per_1000,
        db_cpu_s_per_1000=None if db0 is None or db1 is None else (db1 - db0) * per_1000,
        **result,
    )


class Monitor:
    """A `postback-monitor serve` process for the benchmark."""

    def __init__(self, database_url: str, workdir: Path, workers: int) -> None:
        self.port = free_port()  # management: the API
        self.url = f"http://127.0.0.1:{self.port}"
        self.capture_port = free_port()  # what wrk drives
        self.log = open(workdir / f"monitor-{self.port}.log", "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("POSTBACK_MONITOR_")}
        env["DATABASE_URL"] = database_url
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "monitor",
                "serve",
                "--port",
                str(self.port),
                "--capture-port",
                str(self.capture_port),
                "--workers",
                str(workers),
                "--admin-token",
                ADMIN_TOKEN,
                "--data-dir",
                str(workdir / f"data-{self.port}"),
                "--log-format",
                "json",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        wait_http(self.url + "/readyz")

    def create_endpoint(self) -> dict[str, Any]:
        body = json.dumps(
            {
                "name": "bench",
                "settings": {
                    "required_params": ["click_id"],
                    "event_param": "event",
                    "amount_param": "payout",
                    "currency_param": "currency",
                },
            }
        )
        req = urllib.request.Request(
            self.url + "/api/endpoints",
            data=body.encode(),
            method="POST",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return dict(json.loads(resp.read()))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def count_hits(database_url: str, endpoint_id: int) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM hits WHERE endpoint_id = $1", endpoint_id)
        )
    finally:
        await conn.close()


async def exact_check(
    url: str, database_url: str, endpoint_id: int, total: int = 2000
) -> dict[str, Any]:
    """Send a fixed number of postbacks and compare the 2xx answers with the stored hits."""
    before = await count_hits(database_url, endpoint_id)
    ok = 0
    sem = asyncio.Semaphore(20)
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            nonlocal ok
            async with (
                sem,
                session.get(url, params={"click_id": f"exact-{i}", "payout": "1"}) as resp,
            ):
                await resp.read()
                ok += 200 <= resp.status < 300

        await asyncio.gather(*(one(i) for i in range(total)))
    stored = await count_hits(database_url, endpoint_id) - before
    return {"sent": total, "acknowledged_2xx": ok, "stored": stored, "equal": ok == stored}


def start_database(workdir: Path) -> tuple[str, Any, Path | None]:
    given = os.environ.get("DATABASE_URL")
    if given:
        return given, None, None
    from monitor.storage.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(workdir / "pg")
    return pg.start(), pg, pg.pgdata


def table(runs: list[Run], ceiling: Run) -> str:
    lines = [
        f"{'run':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU s/1k':>9} "
        f"{'DB CPU s/1k':>11} {'x ceiling':>9}",
    ]
    for r in runs:
        db = "-" if r.db_cpu_s_per_1000 is None else f"{r.db_cpu_s_per_1000:.3f}"
        lines.append(
            f"{r.name:<34} {r.requests_per_s:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{r.cpu_s_per_1000:>9.3f} {db:>11} {r.requests_per_s / ceiling.requests_per_s:>9.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--no-workers", action="store_true", help="skip the --workers 2 run")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="pbm-bench-"))
    database_url, pg, pgdata = start_database(workdir)
    runs: list[Run] = []
    checks: dict[str, Any] = {}
    try:
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("bare.py")), "--port", str(bare_port)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            wait_http(f"http://127.0.0.1:{bare_port}/readyz")
            ceiling = measure(
                "bare aiohttp (ceiling)",
                bare.pid,
                f"http://127.0.0.1:{bare_port}/p/tok",
                args,
                None,
            )
        finally:
            bare.terminate()
            bare.wait(30)
        runs.append(ceiling)

        monitor = Monitor(database_url, workdir, workers=1)
        try:
            endpoint = monitor.create_endpoint()
            capture_url = endpoint["capture_url"]  # on the capture listener
            before = asyncio.run(count_hits(database_url, endpoint["id"]))
            one = measure(
                "postback-monitor --workers 1", monitor.proc.pid, capture_url, args, pgdata
            )
            runs.append(one)
            time.sleep(1.0)  # let the last batch commit
            stored = asyncio.run(count_hits(database_url, endpoint["id"])) - before
            acknowledged = one.requests - one.non_2xx
            checks["max_rate_run"] = {
                "acknowledged_2xx": acknowledged,
                "stored": stored,
                "every_2xx_stored": stored >= acknowledged,
                "stored_beyond_2xx": stored - acknowledged,
                "note": "wrk drops the responses in flight when it stops; those hits are stored",
            }
            # wrk paces each connection with a delay before each request, so a
            # connection's cycle is the delay plus the answer's latency: the delay is
            # the cycle the rate asks for less the latency (p50 of the max run).
            half_rate = one.requests_per_s / 2
            delay_ms = max(0.0, args.connections / half_rate * 1000 - one.p50_ms)
            half = measure(
                f"--workers 1 at half max ({half_rate:.0f}/s)",
                monitor.proc.pid,
                capture_url,
                args,
                pgdata,
                delay_ms,
            )
            runs.append(half)
            checks["exact_count"] = asyncio.run(
                exact_check(capture_url, database_url, endpoint["id"])
            )
        finally:
            monitor.stop()

        if not args.no_workers:
            monitor = Monitor(database_url, workdir, workers=2)
            try:
                endpoint = monitor.create_endpoint()
                two = measure(
                    "postback-monitor --workers 2",
                    monitor.proc.pid,
                    endpoint["capture_url"],
                    args,
                    pgdata,
                )
                runs.append(two)
            finally:
                monitor.stop()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    ratios = {
        "monitor_workers1_over_ceiling": runs[1].requests_per_s / ceiling.requests_per_s,
        "p99_ms_at_max_rate": runs[1].p99_ms,
        "p99_ms_at_half_max_rate": runs[2].p99_ms,
    }
    # Issue #18's targets, printed as met or not: they are goals, not the exit code.
    targets = {
        "throughput >= 0.7x ceiling": ratios["monitor_workers1_over_ceiling"] >= 0.7,
        "p99 < 20 ms at full load": runs[1].p99_ms < 20,
        "p99 < 25 ms at half max": runs[2].p99_ms < 25,
    }
    if len(runs) > 3:
        ratios["workers2_over_workers1"] = runs[3].requests_per_s / runs[1].requests_per_s
    print(table(runs, ceiling))
    print()
    for key, value in ratios.items():
        print(f"{key}: {value:.2f}")
    for key, value in checks.items():
        print(f"{key}: {value}")
    for target, met in targets.items():
        print(f"target {target}: {'met' if met else 'NOT met'}")
    document = {
        "cpu_count": os.cpu_count(),
        "duration_s": args.duration,
        "connections": args.connections,
        "runs": [asdict(r) for r in runs],
        "ratios": ratios,
        "targets": targets,
        "checks": checks,
    }
    print(json.dumps(document))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2))
    return 0 if checks["exact_count"]["equal"] and checks["max_rate_run"]["every_2xx_stored"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
