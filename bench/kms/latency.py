#!/usr/bin/env python3
"""`coffer kms-plugin` latency, as kube-apiserver sees it: Encrypt and Decrypt
of a 32-byte seed over the plugin's unix socket (gRPC), against the same
transit calls made straight to coffer over HTTP from the same Python process
(the baseline: what the plugin adds is the gRPC hop and its own HTTP call).

One release coffer on its embedded store, a transit key, the plugin with a
token limited to that key. Calls are sequential (kube-apiserver makes one
Encrypt per DEK-seed rotation and one Decrypt per seed it has not cached), so
latency, not throughput, is what matters. Goal: Encrypt/Decrypt p99 < 2 ms.

Needs: a Rust toolchain; grpcio-tools from PyPI (installed into a venv here).
Usage: python3 bench/kms/latency.py [--calls 2000]
"""
import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ROOT, build_release, call, start_coffer  # noqa: E402

POLICY = """
path "transit/encrypt/etcd" { capabilities = ["update"] }
path "transit/decrypt/etcd" { capabilities = ["update"] }
path "transit/keys/etcd"    { capabilities = ["read"] }
"""


def venv_python():
    venv = os.path.join(ROOT, "target", "grpc-venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(os.path.join(venv, ".grpcio-tools==1.85.1")):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "grpcio-tools==1.85.1"], check=True)
        open(os.path.join(venv, ".grpcio-tools==1.85.1"), "w").close()
    return py


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def http_baseline(url, token, n):
    seed = base64.b64encode(os.urandom(32)).decode()
    enc, dec = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        _, body = call("POST", url + "/v1/transit/encrypt/etcd", token, {"plaintext": seed})
        t1 = time.perf_counter()
        call("POST", url + "/v1/transit/decrypt/etcd", token, {"ciphertext": body["data"]["ciphertext"]})
        t2 = time.perf_counter()
        enc.append((t1 - t0) * 1000)
        dec.append((t2 - t1) * 1000)
    return {k: {"p50": pct(v, 0.5), "p99": pct(v, 0.99)} for k, v in (("encrypt", enc), ("decrypt", dec))}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000)
    a = ap.parse_args()
    build_release(["-p", "coffer", "--bin", "coffer"])
    py = venv_python()
    work = tempfile.mkdtemp(prefix="coffer-kms-bench-")
    stubs = os.path.join(work, "stubs")
    os.makedirs(stubs)
    subprocess.run([py, "-m", "grpc_tools.protoc", "-I", os.path.join(ROOT, "crates/coffer/proto"),
                    f"--python_out={stubs}", f"--grpc_python_out={stubs}", "kms_v2.proto"], check=True)
    coffer, url, root = start_coffer(work)
    plugin = None
    try:
        assert call("POST", url + "/v1/sys/mounts/transit", root, {"type": "transit"})[0] == 204
        assert call("POST", url + "/v1/transit/keys/etcd", root, {})[0] in (200, 204)
        assert call("PUT", url + "/v1/sys/policies/acl/kms", root, {"policy": POLICY})[0] == 204
        _, body = call("POST", url + "/v1/auth/token/create", root, {"policies": ["kms"], "ttl": "24h"})
        token = body["auth"]["client_token"]
        sock = os.path.join(work, "kms.sock")
        env = dict(os.environ, VAULT_TOKEN=token, COFFER_LOG="warn")
        plugin = subprocess.Popen([os.path.join(ROOT, "target/release/coffer"), "kms-plugin", "--key", "transit/keys/etcd",
                                   "--address", url, "--listen", "unix://" + sock],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        for line in plugin.stdout:
            if line.startswith("Listening on"):
                break
        threading.Thread(target=lambda: [None for _ in plugin.stdout], daemon=True).start()
        client = os.path.join(ROOT, "crates/coffer/tests/kms/client.py")
        # Warm both paths once, then measure the plugin and the baseline in turns.
        subprocess.run([py, client, stubs, sock, "bench", "50"], check=True, capture_output=True)
        http_baseline(url, token, 50)
        out = subprocess.run([py, client, stubs, sock, "bench", str(a.calls)], check=True, capture_output=True, text=True)
        grpc = json.loads(out.stdout)
        base = http_baseline(url, token, a.calls)
        result = {"calls": a.calls, "plugin_grpc_ms": grpc, "direct_http_ms": base,
                  "p99_ratio_plugin_over_direct": {k: grpc[k]["p99"] / base[k]["p99"] for k in grpc}}
        print(json.dumps(result, indent=2))
        os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench/out/kms_latency.json"), "w") as f:
            json.dump(result, f, indent=2)
    finally:
        if plugin:
            plugin.kill()
        coffer.kill()


if __name__ == "__main__":
    main()
