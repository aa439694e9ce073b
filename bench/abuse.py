"""Unauthenticated abuse, coffer beside OpenBao: a flood of userpass logins
for unknown users (peak memory growth, how long the flood takes, how long
sys/health takes meanwhile) and slowloris connections (partial headers: how
long until the server cuts them, whether sys/health answers meanwhile).

    python3 bench/abuse.py --logins 300 --slow 200

Raw numbers go to bench/out/abuse.json.
"""
import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import tempfile
import threading
import time

import harness


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def health_sampler(url, stop, out):
    """Times sys/health every 50 ms until `stop` is set."""
    while not stop.is_set():
        t = time.perf_counter()
        try:
            harness.call("GET", url + "/v1/sys/health")
            out.append((time.perf_counter() - t) * 1000)
        except OSError:
            out.append(float("inf"))
        time.sleep(0.05)


def login_flood(url, pid, n):
    before = peak_rss_mib(pid)
    stop, health = threading.Event(), []
    sampler = threading.Thread(target=health_sampler, args=(url, stop, health))
    sampler.start()
    codes = {}
    t = time.perf_counter()

    def one(i):
        code, _ = harness.call("POST", f"{url}/v1/auth/userpass/login/nobody{i}",
                               body={"password": "guess"})
        return code

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        for code in pool.map(one, range(n)):
            codes[code] = codes.get(code, 0) + 1
    wall = time.perf_counter() - t
    stop.set()
    sampler.join()
    health.sort()
    return {
        "peak_rss_growth_mib": round(peak_rss_mib(pid) - before, 1),
        "wall_s": round(wall, 2),
        "statuses": codes,
        "health_p50_ms": round(statistics.median(health), 1) if health else None,
        "health_max_ms": round(health[-1], 1) if health else None,
    }


def slowloris(url, n, limit):
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(s)
    t0 = time.perf_counter()
    code, _ = harness.call("GET", url + "/v1/sys/health")
    health_during = code
    closed_at = [None] * n

    def wait(i, s):
        s.settimeout(limit)
        try:
            while s.recv(1024):
                pass
        except OSError:
            pass
        else:
            closed_at[i] = time.perf_counter() - t0
            return
        if time.perf_counter() - t0 < limit:
            closed_at[i] = time.perf_counter() - t0

    threads = [threading.Thread(target=wait, args=(i, s)) for i, s in enumerate(socks)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for s in socks:
        s.close()
    cut = [c for c in closed_at if c is not None]
    return {
        "connections": n,
        "health_while_held": health_during,
        "cut_within_limit": len(cut),
        "cut_after_s_max": round(max(cut), 1) if cut else None,
    }


def prepare_userpass(url, token):
    code, body = harness.call("POST", url + "/v1/sys/auth/userpass", token, {"type": "userpass"})
    assert code in (200, 204), body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--logins", type=int, default=300)
    ap.add_argument("--slow", type=int, default=200)
    ap.add_argument("--slow-limit", type=float, default=20.0,
                    help="seconds to wait for a server to cut a slow connection")
    args = ap.parse_args()
    harness.require("bao")
    harness.build_release(["-p", "coffer", "--bin", "coffer"])
    results = {}
    with tempfile.TemporaryDirectory() as work:
        os.makedirs(f"{work}/c")
        proc, url, token = harness.start_coffer(f"{work}/c")
        try:
            prepare_userpass(url, token)
            results["coffer"] = {"login_flood": login_flood(url, proc.pid, args.logins),
                                 "slowloris": slowloris(url, args.slow, args.slow_limit)}
        finally:
            proc.kill()
        os.makedirs(f"{work}/b")
        bproc, burl = harness.start_bao(f"{work}/b")
        try:
            btoken = harness.init_unseal(burl)
            prepare_userpass(burl, btoken)
            results["openbao"] = {"login_flood": login_flood(burl, bproc.pid, args.logins),
                                  "slowloris": slowloris(burl, args.slow, args.slow_limit)}
        finally:
            bproc.kill()
    c, b = results["coffer"]["login_flood"], results["openbao"]["login_flood"]
    results["ratios"] = {
        "peak_rss_growth_coffer_over_openbao": round(
            c["peak_rss_growth_mib"] / max(b["peak_rss_growth_mib"], 0.1), 2),
        "flood_wall_coffer_over_openbao": round(c["wall_s"] / b["wall_s"], 2),
    }
    print(json.dumps(results, indent=2))
    os.makedirs(os.path.join(harness.ROOT, "bench/out"), exist_ok=True)
    with open(os.path.join(harness.ROOT, "bench/out/abuse.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
