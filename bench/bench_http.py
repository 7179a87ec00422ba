#!/usr/bin/env python3
"""Scoring cost per window with the HTTP server on and a page open, against the server off.

    .venv/bin/python bench/bench_http.py --out bench/out/http.json [--bundle DIR] [--windows 100]

Two daemons in one process, built from the same bundle and config except
``http:``: *off* (no server) and *on* (``http.listen: 127.0.0.1:0``, its
server started). A client thread plays an open status page: it fetches
``/api/status`` (which also makes the server analyse the latest window for the
microphone panel) and ``/metrics``, but only while the *on* daemon is being
timed, so its CPU and GIL use land on that arm.

Time runs ``--speedup`` times faster than on site (default 20): a window
every 10 s hop / 20 = 0.5 s, the page polling every 2 s / 20 = 0.1 s (plus a
Prometheus scrape in the same request pair), so the page makes as many
requests per window as in real life and they meet the loop both while it
scores and while it waits for audio. ``--speedup 0`` drops the pacing: windows
back to back and the page polling every 0.25 s, a stress test in which every
request competes with scoring for the GIL.

The arms take turns in blocks of ``--block`` windows (order flipping each
round), so a machine busy with other work slows both alike. Each timed step
is what the scoring loop does per window: ``process(window)`` (sensor check,
log-mel, TFLite, decision) plus the observer calls (``window`` and ``tick``).
The windows are 10 s of seeded noise with a tone, at the model's rate; the
threshold is set out of reach so that no alert (evidence write, explanation)
lands in one arm only.

Writes median/p10/p90 per arm, the ratio of the medians and of the means,
and ``within_5pct`` (median ratio <= 1.05).

``--attack`` measures something else (issue 21): the *on* daemon alone, with
a token, scoring windows back to back for ``--attack-seconds`` (default 60)
while ``--slow-clients`` (default 200) slow clients each send a request-head
byte every 4 s (``devtools/slow_clients.py``; reconnecting when dropped;
``--sources`` loopback source addresses, 1 = all on the probe's own address)
and ``--probes`` (default 10) authorised ``/api/status`` requests are spread
over the attack. Writes the probes answered (and their latencies), the
scoring rate before and during the attack (windows per second) and what the
attackers saw (connections, drops, the longest a dropped one lived).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, bundle_dir, finish, log, summarise_ms


def make_daemon(bundle: Any, state: Path, http: bool, token_env: str | None = None) -> Any:
    import yaml

    from edge_monitor.commands.run import serve_status_page
    from edge_monitor.config.loader import parse_config
    from edge_monitor.model.scorer import Scorer
    from edge_monitor.service import logs
    from edge_monitor.service.daemon import Daemon, NullPublisher

    doc: dict[str, Any] = {"device_id": "bench-http", "model": str(bundle.path), "state_dir": str(state),
                           "mqtt": {"enabled": False}, "decision": {"threshold": 1e9}}
    if http:
        doc["http"] = {"listen": "127.0.0.1:0"} | ({"token_env": token_env} if token_env else {})
    cfg = parse_config(yaml.safe_dump(doc), str(state / "c.yaml"))

    class _Quiet:  # sd_notify stand-in: no socket outside systemd anyway
        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: True

    daemon = Daemon(cfg, Scorer(bundle), NullPublisher(), logs.get_logger("bench"), notifier=_Quiet())
    serve_status_page(daemon, cfg, daemon.log)  # as `run` attaches the page
    return daemon


def page_of(daemon: Any) -> Any:
    """The status page ``serve_status_page`` attached to ``daemon`` (its ``HttpService``)."""
    from edge_monitor.web.server import HttpService

    return next(o for o in daemon.observers if isinstance(o, HttpService))


def make_windows(rate: int, seconds: float, count: int) -> list[Any]:
    import numpy as np

    from edge_monitor.audio.ring_buffer import Window

    n = round(rate * seconds)
    t = np.arange(n) / rate
    rng = np.random.default_rng(16)
    out = []
    for i in range(count):
        x = 0.05 * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * (900 + 10 * i) * t)
        out.append(Window(samples=x.astype(np.float32)[:, None], index=i, start_sample=i * n, sample_rate=rate,
                          start_time=1.8e9 + i * seconds, end_time=1.8e9 + (i + 1) * seconds))
    return out


class Page(threading.Thread):
    """Polls /api/status and /metrics every ``period`` s while :attr:`active` is set."""

    def __init__(self, url: str, period: float) -> None:
        super().__init__(daemon=True)
        self.url, self.period = url, period
        self.active = threading.Event()
        self.stopped = threading.Event()
        self.requests = 0
        self.bytes = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            if not self.active.wait(0.1):
                continue
            for path in ("api/status", "metrics"):
                with urllib.request.urlopen(self.url + path, timeout=10) as r:
                    self.bytes += len(r.read())
                self.requests += 1
            self.stopped.wait(self.period)


def attack(bundle: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The slow-client measurement (see the module docstring); returns the result document."""
    import json
    import os
    import subprocess

    import numpy as np

    os.environ["EDGE_MONITOR_BENCH_TOKEN"] = token = "bench-token"
    with tempfile.TemporaryDirectory(prefix="bench-http-attack-") as tmp:
        d = make_daemon(bundle, Path(tmp), http=True, token_env="EDGE_MONITOR_BENCH_TOKEN")
        d._observe("start", None)
        url = page_of(d).url
        wins = make_windows(d.model_rate, d.window_seconds, 20)
        scored = [0]
        step_ms: list[float] = []
        stop = threading.Event()

        def loop() -> None:  # windows back to back, as fast as this machine scores them
            i = 0
            while not stop.is_set():
                w = dataclasses.replace(wins[i % len(wins)], index=i)
                t0 = time.perf_counter()
                d.process(w)
                d._observe("window", w)
                d._observe("tick", None)
                step_ms.append((time.perf_counter() - t0) * 1e3)
                i += 1
                scored[0] = i

        def rate(seconds: float) -> float:
            n0, t0 = scored[0], time.monotonic()
            time.sleep(seconds)
            return (scored[0] - n0) / (time.monotonic() - t0)

        def probe() -> tuple[bool, float]:
            req = urllib.request.Request(url + "api/status", headers={"Authorization": f"Bearer {token}"})
            t0 = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    ok = r.status == 200 and b"windows_scored" in r.read()
            except OSError:
                ok = False
            return ok, time.monotonic() - t0

        worker = threading.Thread(target=loop, daemon=True)
        worker.start()
        time.sleep(3.0)  # warm-up
        n_before = [scored[0], 0]
        before = rate(10.0)
        n_before[1] = scored[0]
        log(f"before the attack: {before:.2f} windows/s; {args.slow_clients} slow clients for "
            f"{args.attack_seconds:g} s from {args.sources} address(es)")
        host, port = page_of(d).address
        probes: list[tuple[bool, float]] = []
        # The attackers run in their own process: their Python must not compete for this one's GIL.
        slow = subprocess.Popen([sys.executable, "-m", "devtools.slow_clients", host, str(port), "--n",
                                 str(args.slow_clients), "--seconds", str(args.attack_seconds + 5), "--sources",
                                 str(args.sources)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        time.sleep(3.0)  # every client connected
        t0, n0 = time.monotonic(), scored[0]
        for i in range(args.probes):
            time.sleep(max(0.0, t0 + (i + 1) * args.attack_seconds / args.probes - time.monotonic()))
            probes.append(probe())
        during = (scored[0] - n0) / (time.monotonic() - t0)
        ms_during = step_ms[n0:scored[0]]
        slow.terminate()
        tally = json.loads(slow.communicate(timeout=30)[0].strip().splitlines()[-1])
        stop.set()
        worker.join(30)
        d._observe("stop", None)
    answered = sum(ok for ok, _ in probes)
    lat = sorted(t for ok, t in probes if ok)
    ms_before = step_ms[n_before[0]:n_before[1]]
    print(f"{answered} of {len(probes)} authorised requests answered during {args.attack_seconds:g} s of "
          f"{args.slow_clients} slow clients (latency max {max(lat, default=float('nan')) * 1e3:.1f} ms); "
          f"scoring {before:.2f} -> {during:.2f} windows/s, median {np.median(ms_before):.2f} -> "
          f"{np.median(ms_during):.2f} ms per window")
    return {
        "bench": "http-attack", "bundle": str(bundle.path), "bundle_sha256": bundle.sha256,
        "what": "authorised /api/status requests answered and scoring rate while slow clients hold connections",
        "slow_clients": args.slow_clients, "sources": args.sources, "attack_seconds": args.attack_seconds,
        "probes": len(probes), "answered": answered,
        "latency_ms": [round(t * 1e3, 2) for _, t in probes],
        "windows_per_s_before": before, "windows_per_s_during": during, "rate_ratio": during / before,
        "ms_per_window_before": summarise_ms([t / 1e3 for t in ms_before]),
        "ms_per_window_during": summarise_ms([t / 1e3 for t in ms_during]),
        "attackers_open_each_second": tally["open_per_second"], "attacker_connects": tally["connects"],
        "attacker_drops": tally["closed_by_server"], "attacker_longest_life_s": tally["longest_life_s"],
        "done": answered >= 0.8 * len(probes) and float(np.median(ms_during)) <= 1.1 * float(np.median(ms_before)),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help="result JSON (default bench/out/http.json, or http_attack.json with --attack)")
    ap.add_argument("--bundle", type=Path, default=None, help="model bundle (default bench/out/bundle)")
    ap.add_argument("--windows", type=int, default=100, help="timed windows per arm (default 100)")
    ap.add_argument("--block", type=int, default=10, help="windows per turn (default 10)")
    ap.add_argument("--speedup", type=float, default=20.0,
                    help="time compression against a 10 s hop and a 2 s page poll (default 20; 0 = stress)")
    ap.add_argument("--attack", action="store_true", help="the slow-client measurement instead (see above)")
    ap.add_argument("--attack-seconds", type=float, default=60.0)
    ap.add_argument("--slow-clients", type=int, default=200)
    ap.add_argument("--sources", type=int, default=1, help="loopback source addresses of the slow clients")
    ap.add_argument("--probes", type=int, default=10)
    args = ap.parse_args()

    from edge_monitor.model.bundle import load_bundle
    from edge_monitor.service import logs

    logs.configure("warning", "json", stream=sys.stderr)
    bundle = load_bundle(args.bundle or bundle_dir(REPO / "bench" / "out"))
    if args.attack:
        return finish(attack(bundle, args), args.out or REPO / "bench" / "out" / "http_attack.json")
    args.out = args.out or REPO / "bench" / "out" / "http.json"
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        daemons = {"off": make_daemon(bundle, Path(tmp) / "off", http=False),
                   "on": make_daemon(bundle, Path(tmp) / "on", http=True)}
        for d in daemons.values():
            d._observe("start", None)  # the on daemon's server starts listening here
        url = page_of(daemons["on"]).url
        period = 10.0 / args.speedup if args.speedup > 0 else 0.0  # s between windows
        poll_s = 2.0 / args.speedup if args.speedup > 0 else 0.25
        page = Page(url, poll_s)
        page.start()
        rate = daemons["off"].model_rate
        wins = make_windows(rate, daemons["off"].window_seconds, 20)
        log(f"bundle {bundle.path} ({bundle.sha256[:12]}); server {url}; {args.windows} windows per arm")

        times: dict[str, list[float]] = {"off": [], "on": []}
        counter = 0
        next_at = time.monotonic()

        def step(name: str) -> None:
            nonlocal counter, next_at
            if period:  # the loop idles until the next window is complete, as it waits for audio
                next_at = max(next_at + period, time.monotonic())
                time.sleep(max(0.0, next_at - time.monotonic()))
            d = daemons[name]
            w = dataclasses.replace(wins[counter % len(wins)], index=counter)
            counter += 1
            t0 = time.perf_counter()
            d.process(w)
            d._observe("window", w)
            d._observe("tick", None)
            times[name].append(time.perf_counter() - t0)

        for name in ("off", "on"):  # warm-up: interpreters, filterbanks, first scrape (imports prometheus_client)
            page.active.set() if name == "on" else page.active.clear()
            for _ in range(5):
                step(name)
            times[name].clear()
        time.sleep(min(1.0, 2 * poll_s))
        rounds = (args.windows + args.block - 1) // args.block
        for r in range(rounds):
            for name in (("off", "on") if r % 2 == 0 else ("on", "off")):
                if name == "on":
                    page.active.set()
                    time.sleep(0.05)  # the page is already polling when the block starts
                else:
                    page.active.clear()
                for _ in range(args.block):
                    step(name)
        page.active.clear()
        page.stopped.set()
        for d in daemons.values():
            d._observe("stop", None)
    import numpy as np

    res = {name: summarise_ms(t) for name, t in times.items()}
    for name, t in times.items():
        res[name]["mean_ms"] = float(np.mean(t) * 1e3)
    ratio_median = res["on"]["median_ms"] / res["off"]["median_ms"]
    ratio_mean = res["on"]["mean_ms"] / res["off"]["mean_ms"]
    result = {
        "bench": "http",
        "what": "scoring-loop time per window (process + observers), server off vs on with a page polling",
        "bundle": str(bundle.path), "bundle_sha256": bundle.sha256,
        "windows_per_arm": len(times["on"]), "block": args.block, "speedup": args.speedup,
        "window_period_s": period, "poll_s": poll_s,
        "page_requests": page.requests, "page_bytes": page.bytes,
        "off": res["off"], "on": res["on"],
        "ratio_median": ratio_median, "ratio_mean": ratio_mean,
        "within_5pct": ratio_median <= 1.05,
    }
    print(f"per window: off {res['off']['median_ms']:.2f} ms (p90 {res['off']['p90_ms']:.2f}), "
          f"on {res['on']['median_ms']:.2f} ms (p90 {res['on']['p90_ms']:.2f}); ratio of medians "
          f"{ratio_median:.3f}, of means {ratio_mean:.3f}; {page.requests} requests served meanwhile")
    return finish(result, args.out)


if __name__ == "__main__":
    sys.exit(main())
