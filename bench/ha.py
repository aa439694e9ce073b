#!/usr/bin/env python3
"""HA on PostgreSQL: failover time, standby reads, and the cost of forwarding,
fencing and invalidation, in one run.

Starts a single coffer node on PostgreSQL (the baseline) and a 3-node HA cluster
on another pair of tables, all release builds on loopback:
- KV v1 writes (wrk, distinct keys) on the single node, on the HA active node
  (fenced, and logged for the two standbys that follow it) and through a
  standby (forwarded);
- KV v2 reads of one secret on the single node, the active node and a standby
  (served by the standby itself), with the CPU time each serving process used
  per read (from /proc), and all three nodes read at once vs the single node;
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
import threading
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


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reads_with_cpu(url, tok, pid, duration):
    before = cpu_seconds(pid)
    r = wrk(url, tok, duration, path=READ_PATH)
    r["cpu_us"] = (cpu_seconds(pid) - before) * 1e6 / (r["rps"] * duration)
    return r


READ_PATH = "/v1/kv2/data/bench"


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
            code, body = call("POST", url + "/v1/sys/mounts/kv2", tok, {"type": "kv", "options": {"version": "2"}})
            assert code == 204, body
            code, body = call("PUT", url + "/v1/kv2/data/bench", tok, {"data": {"password": "x" * 24}})
            assert code == 200, body
        time.sleep(0.5)

        rows = []
        pid = {single: procs[0].pid, **{u: p.pid for u, (p, _) in nodes.items()}}
        standbys = [u for u in nodes if u != active]
        for label, url, tok in (("single node", single, stoken), ("HA active", active, token),
                                ("HA standby", standby, token)):
            before = {u: cpu_seconds(p) for u, p in pid.items()}
            w = wrk(url, tok, args.duration, method="PUT", body={"v": "x" * 32}, path="/v1/kv/x", lua=WRITE_LUA)
            used = {u: (cpu_seconds(p) - before[u]) * 1e6 / (w["rps"] * args.duration) for u, p in pid.items()}
            # The CPU a write costs the node that commits it, and what following
            # it costs each standby.
            w["cpu_us"] = used[url if url == single else active]
            others = [u for u in standbys if u != url]
            w["follow_us"] = 0 if url == single else statistics.mean(used[u] for u in others)
            rows.append([label, w, None])
        # Reads after all writes, in alternating rounds, so that no node's
        # figure carries the aftermath of a write run (or is always first).
        reads = {single: [], active: [], standby: []}
        for _ in range(3):
            for url, tok in ((single, stoken), (active, token), (standby, token)):
                reads[url].append(reads_with_cpu(url, tok, pid[url], max(2, args.duration // 2)))
        for row, url in zip(rows, (single, active, standby)):
            row[2] = {k: statistics.mean(r[k] for r in reads[url]) for k in ("rps", "p99_ms", "cpu_us")}
        base_w, base_r = rows[0][1]["rps"], rows[0][2]["rps"]
        # The same writes with both standbys stopped (SIGSTOP): fencing alone,
        # nobody following; the difference to "HA active" is what following costs.
        for u in standbys:
            nodes[u][0].send_signal(signal.SIGSTOP)
        try:
            before = cpu_seconds(pid[active])
            w = wrk(active, token, args.duration, method="PUT", body={"v": "x" * 32}, path="/v1/kv/x", lua=WRITE_LUA)
            w["cpu_us"] = (cpu_seconds(pid[active]) - before) * 1e6 / (w["rps"] * args.duration)
            w["follow_us"] = 0
        finally:
            for u in standbys:
                nodes[u][0].send_signal(signal.SIGCONT)
        rows.insert(1, ("HA, no followers", w, None))
        time.sleep(1)
        print(f"\n{'':16} {'writes/s':>10} {'ratio':>6} {'p99 ms':>7} {'us/write':>9} {'follow us':>10}   "
              f"{'reads/s':>10} {'ratio':>6} {'p99 ms':>7} {'us/read':>8}")
        for label, w, r in rows:
            reads = (f"{r['rps']:10.0f} {r['rps'] / base_r:6.2f} {r['p99_ms']:7.1f} {r['cpu_us']:8.1f}"
                     if r else "")
            print(f"{label:16} {w['rps']:10.0f} {w['rps'] / base_w:6.2f} {w['p99_ms']:7.1f} {w['cpu_us']:9.1f} "
                  f"{w['follow_us']:10.1f}   {reads}")
        print("us/write: CPU of the node that commits a write (the active one for HA); follow us: CPU a "
              "following standby spends per write; us/read: CPU of the node serving the read")
        print("(HA active writes: fenced, and logged for the two following standbys; HA standby writes: "
              "forwarded; HA standby reads: served by the standby)")
        print(f"CPU per read, standby / active: {rows[3][2]['cpu_us'] / rows[2][2]['cpu_us']:.2f}; "
              f"HA active writes with 2 followers / without: {rows[2][1]['rps'] / rows[1][1]['rps']:.2f} "
              f"(CPU per write {rows[2][1]['cpu_us'] / rows[1][1]['cpu_us']:.2f}x)")
        # All three nodes at once, each with a third of the connections.
        results = {}

        def load(u):
            results[u] = wrk(u, token, args.duration, path=READ_PATH, conns=11)

        threads = [threading.Thread(target=load, args=(u,)) for u in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = sum(r["rps"] for r in results.values())
        print(f"KV v2 reads through all 3 nodes at once: {total:.0f}/s, {total / base_r:.2f}x the single node "
              f"(one machine of {os.cpu_count()} cores runs all of them)")

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
