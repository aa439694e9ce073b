#!/usr/bin/env python3
"""What auditing costs, and how fast the log answers questions. One run:

- KV read req/s on coffer's embedded store with no audit device, with one
  file device (the default: one write per line, no fsync), and with
  `fsync = true`; each configuration gets a fresh server and the same wrk
  workload, in two interleaved rounds; the ratios are against "none".
- `coffer audit query` and `coffer audit verify` over a log of at least
  1,000,000 lines (the file device's real lines, repeated to size): MB/s,
  next to `wc -l` reading the same file (the floor of reading it at all).

Needs wrk (Debian). Usage: python3 bench/audit.py [--duration 8] [--lines 1000000]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import ROOT, build_release, call, require, start_coffer, wrk

COFFER = os.path.join(ROOT, "target/release/coffer")


def serve(work, extra, duration):
    proc, url, root = start_coffer(work, extra=extra)
    try:
        assert call("POST", url + "/v1/sys/mounts/secret", root, {"type": "kv"})[0] == 204
        assert call("POST", url + "/v1/secret/bench", root, {"user": "bench", "password": "bench-secret-value"})[0] == 204
        return wrk(url, root, duration)
    finally:
        proc.terminate()
        proc.wait()


def timed(cmd):
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise SystemExit(f"{cmd}: {out.stderr}")
    return time.perf_counter() - t, out.stdout + out.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    require("wrk")
    build_release(["-p", "coffer", "--bin", "coffer"])
    work = tempfile.mkdtemp(prefix="coffer-audit-bench-")
    try:
        configs = {
            "none": "",
            "file": 'audit "file" "file" {{ file_path = "{log}" }}\n',
            "file, fsync = true": 'audit "file" "file" {{\n file_path = "{log}"\n fsync = true\n}}\n',
        }
        runs = {name: [] for name in configs}
        real_log = None
        for rnd in range(2):
            for i, (name, extra) in enumerate(configs.items()):
                d = os.path.join(work, f"r{rnd}-{i}")
                os.makedirs(d)
                log = os.path.join(d, "audit.log")
                runs[name].append(serve(d, extra.format(log=log), args.duration))
                if name == "file" and real_log is None:
                    real_log = log
        reads = {name: max(rs, key=lambda r: r["rps"]) for name, rs in runs.items()}

        print(f"\nKV read, wrk -t2 -c32 -d{args.duration}s, same secret, best of 2 rounds\n")
        print("| audit devices | req/s | p50 ms | p99 ms | vs none |")
        print("|---|---|---|---|---|")
        base = reads["none"]["rps"]
        for name, r in reads.items():
            print(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps'] / base:.2f} |")

        # A big log made of the server's own lines, repeated.
        with open(real_log, "rb") as f:
            sample = f.read().splitlines(keepends=True)
        big = os.path.join(work, "big.log")
        with open(big, "wb") as f:
            n = 0
            while n < args.lines:
                chunk = sample[: args.lines - n]
                f.writelines(chunk)
                n += len(chunk)
        size = os.path.getsize(big)
        mb = size / 1e6

        floor, _ = timed(["wc", "-l", big])
        floor, _ = timed(["wc", "-l", big])  # second read: from the page cache, like the rest
        cases = {
            "query (summary of every line)": [COFFER, "audit", "query", big, "--format", "json"],
            "query --path secret/* --operation read": [COFFER, "audit", "query", big, "--path", "secret/*", "--operation", "read", "--format", "json"],
            "query --accessor (absent value)": [COFFER, "audit", "query", big, "--accessor", "hmac-sha256:" + "0" * 64, "--format", "json"],
            "verify (the device's own log)": [COFFER, "audit", "verify", real_log],
        }
        print(f"\nLog: {n} lines, {mb:.0f} MB (page cache warm)\n")
        print("| command | s | MB/s | vs wc -l |")
        print("|---|---|---|---|")
        print(f"| wc -l | {floor:.2f} | {mb / floor:.0f} | 1.00 |")
        results = {}
        for name, cmd in cases.items():
            secs, out = timed(cmd)
            this_mb = mb if "verify" not in name else os.path.getsize(real_log) / 1e6
            results[name] = {"seconds": secs, "mb_per_s": this_mb / secs}
            print(f"| {name} | {secs:.2f} | {this_mb / secs:.0f} | {(this_mb / secs) / (mb / floor):.2f} |")
        os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench/out/audit.json"), "w") as f:
            json.dump({"reads": reads, "rounds": runs, "log_lines": n, "log_bytes": size,
                       "wc_seconds": floor, "tools": results}, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
