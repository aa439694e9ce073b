#!/usr/bin/env python3
"""HA on PostgreSQL: failover time and the cost of forwarding and fencing, in one run.

Starts a single coffer node on PostgreSQL (the baseline) and a 3-node HA cluster
on another pair of tables, all release builds on loopback:
- KV v1 writes (wrk, distinct keys) on the single node, on the HA active node
  (fenced writes) and through a standby (forwarded);
- KV v1 reads of one secret on the single node, the active node and a standby;
- failover: kill -9 of the active node, time until a write through a standby
  succeeds, repeated (the killed node is restarted each time).

Needs: wrk (Debian), PostgreSQL on 127.0.0.1:5432 (user postgres, db test), Rust.
Usage: python3 bench/ha.py [--duration 8] [--failovers 10] [--binary target/debug/coffer]
"""
import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time

from harness import ROOT, build_release, call, free_port, require, start_printing_addr, wait_health, wrk

PG = "host=127.0.0.1 port=5432 user=postgres dbname=test"
SEAL_KEY = "be" * 32
WRITE_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "/v1/kv/w-" .. math.random(1, 1000000000) .. "-" .. counter)
end
"""


def node_config(work, name, tables, ha):
    api, cluster = free_port(), free_port()
    ha_lines = f'  ha_enabled = "true"\n  ha_table = "{tables[1]}"\n' if ha else ""
    path = os.path.join(work, f"{name}.hcl")
    with open(path, "w") as f:
        f.write(f'storage "postgresql" {{\n  connection_url = "{PG}"\n  table = "{tables[0]}"\n{ha_lines}}}\n'
                f'listener "tcp" {{\n  address = "127.0.0.1:{api}"\n  cluster_address = "127.0.0.1:{cluster}"\n'
                f'  tls_disable = true\n}}\napi_addr = "http://127.0.0.1:{api}"\nlog_level = "warn"\n'
                f'seal "static" {{\n  key_env = "COFFER_BENCH_SEAL_KEY"\n}}\n')
    return path


BINARY = os.path.join(ROOT, "target/release/coffer")


def start(cfg):
    env = dict(os.environ, COFFER_BENCH_SEAL_KEY=SEAL_KEY)
    return start_printing_addr([BINARY, "server", "--config", cfg], env=env)


def init(url):
    code, body = call("PUT", url + "/v1/sys/init", body={"recovery_shares": 1, "recovery_threshold": 1})
    assert code == 200, body
    return body["root_token"]


def active_of(urls, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for u in urls:
            try:
                if call("GET", u + "/v1/sys/health")[0] == 200:
                    return u
            except OSError:
                pass
        time.sleep(0.02)
    raise SystemExit("no active node")


def drop(tables):
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c",
                    "; ".join(f"DROP TABLE IF EXISTS {t}" for t in tables)], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--failovers", type=int, default=10)
    ap.add_argument("--binary", help="a coffer binary to use instead of building a release one (smoke runs)")
    args = ap.parse_args()
    require("wrk")
    global BINARY
    if args.binary:
        BINARY = os.path.abspath(args.binary)
    else:
        build_release(["-p", "coffer", "--bin", "coffer"])
    tag = f"bench_ha_{os.getpid()}"
    single_tables = (f"{tag}_single_kv", f"{tag}_single_ha")
    ha_tables = (f"{tag}_kv", f"{tag}_ha")
    procs, nodes = [], {}
    work = tempfile.mkdtemp(prefix="coffer-bench-ha-")
    try:
        p, single = start(node_config(work, "single", single_tables, ha=False))
        procs.append(p)
        stoken = init(single)
        wait_health(single)
        cfgs = [node_config(work, f"n{i}", ha_tables, ha=True) for i in range(3)]
        for c in cfgs:
            p, url = start(c)
            nodes[url] = (p, c)
        urls = list(nodes)
        token = init(urls[0])
        active = active_of(urls)
        time.sleep(1)
        standby = next(u for u in urls if u != active)
        for url, tok in ((single, stoken), (active, token)):
            code, body = call("POST", url + "/v1/sys/mounts/kv", tok, {"type": "kv"})
            assert code == 204, body
            code, body = call("PUT", url + "/v1/kv/bench", tok, {"password": "x" * 24})
            assert code == 204, body

        rows = []
        for label, url, tok in (("single node", single, stoken), ("HA active (fenced)", active, token),
                                ("HA standby (forwarded)", standby, token)):
            w = wrk(url, tok, args.duration, method="PUT", body={"v": "x" * 32}, path="/v1/kv/x", lua=WRITE_LUA)
            r = wrk(url, tok, args.duration, path="/v1/kv/bench")
            rows.append((label, w, r))
        base_w, base_r = rows[0][1]["rps"], rows[0][2]["rps"]
        print(f"\n{'':24} {'writes/s':>10} {'ratio':>6} {'p99 ms':>7}   {'reads/s':>10} {'ratio':>6} {'p99 ms':>7}")
        for label, w, r in rows:
            print(f"{label:24} {w['rps']:10.0f} {w['rps'] / base_w:6.2f} {w['p99_ms']:7.1f}   "
                  f"{r['rps']:10.0f} {r['rps'] / base_r:6.2f} {r['p99_ms']:7.1f}")

        times = []
        for _ in range(args.failovers):
            active = active_of(list(nodes))
            survivor = next(u for u in nodes if u != active)
            proc, cfg = nodes.pop(active)
            killed = time.time()
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            n = 0
            while True:
                n += 1
                try:
                    code, _ = call("PUT", f"{survivor}/v1/kv/probe-{n}", token, {"v": n})
                except OSError:
                    code = 0
                if code == 204:
                    break
                if time.time() - killed > 30:
                    raise SystemExit("no failover within 30 s")
                time.sleep(0.01)
            times.append((time.time() - killed) * 1000)
            p, url = start(cfg)
            nodes[url] = (p, cfg)
            wait_health(url, want=(429, 200))
        print(f"\nfailover after kill -9 ({len(times)} runs): median {statistics.median(times):.0f} ms, "
              f"max {max(times):.0f} ms, min {min(times):.0f} ms")
    finally:
        for p in procs + [p for p, _ in nodes.values()]:
            if p.poll() is None:
                p.terminate()
                p.wait()
        drop(single_tables + ha_tables)


if __name__ == "__main__":
    main()
