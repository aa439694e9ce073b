#!/usr/bin/env python3
"""Identity and access under load, one run, one server (coffer on its embedded store):

- token creation/s (auth/token/create, each one fsynced),
- AppRole and userpass logins/s (userpass is bound by argon2id's cost: reported),
- the ACL's cost on a KV read: a root token (no ACL) against a token whose
  policy has 50 rules, and against one with 5,000 rules (tries, not a scan).

Needs wrk (Debian). Usage: python3 bench/auth.py [--duration 8]
"""
import argparse
import json
import os
import shutil
import tempfile

from harness import build_release, call, require, start_coffer, wrk


def policy(n):
    rules = [f'path "team{i}/*" {{ capabilities = ["read", "list"] }}' for i in range(n - 1)]
    rules.append('path "secret/bench" { capabilities = ["read"] }')
    return "\n".join(rules)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    args = ap.parse_args()
    require("wrk")
    build_release(["-p", "coffer", "--bin", "coffer"])
    work = tempfile.mkdtemp(prefix="coffer-auth-bench-")
    proc = None
    try:
        proc, url, root = start_coffer(work)
        ok = lambda c: c[0] in (200, 204) or (_ for _ in ()).throw(SystemExit(c))
        ok(call("POST", url + "/v1/sys/mounts/secret", root, {"type": "kv"}))
        ok(call("POST", url + "/v1/secret/bench", root, {"user": "bench", "password": "bench-secret-value"}))
        tokens = {"root (no ACL)": root}
        for n in (50, 5000):
            ok(call("PUT", url + f"/v1/sys/policies/acl/p{n}", root, {"policy": policy(n)}))
            code, body = call("POST", url + "/v1/auth/token/create", root, {"policies": [f"p{n}"], "ttl": "2h"})
            ok((code, body))
            tokens[f"{n}-rule policy"] = body["auth"]["client_token"]

        ok(call("POST", url + "/v1/sys/auth/approle", root, {"type": "approle"}))
        ok(call("POST", url + "/v1/auth/approle/role/bench", root, {"token_policies": ["p50"], "token_ttl": "1h"}))
        role_id = call("GET", url + "/v1/auth/approle/role/bench/role-id", root)[1]["data"]["role_id"]
        secret_id = call("POST", url + "/v1/auth/approle/role/bench/secret-id", root, {})[1]["data"]["secret_id"]
        ok(call("POST", url + "/v1/sys/auth/userpass", root, {"type": "userpass"}))
        ok(call("POST", url + "/v1/auth/userpass/users/bench", root, {"password": "bench-pw", "token_policies": ["p50"]}))

        d = args.duration
        reads = {name: wrk(url, tok, d) for name, tok in tokens.items()}
        create = wrk(url, root, d, method="POST", body={"ttl": "1h", "policies": ["p50"]}, path="/v1/auth/token/create")
        approle = wrk(url, None, d, method="POST", body={"role_id": role_id, "secret_id": secret_id}, path="/v1/auth/approle/login")
        userpass = wrk(url, None, d, method="POST", body={"password": "bench-pw"}, path="/v1/auth/userpass/login/bench", conns=4)

        print(f"\nKV read, wrk -t2 -c32 -d{d}s, same secret\n")
        print("| token | req/s | p50 ms | p99 ms | vs root |")
        print("|---|---|---|---|---|")
        base = reads["root (no ACL)"]["rps"]
        for name, r in reads.items():
            print(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['rps'] / base:.2f} |")
        print(f"\n| operation | req/s | p50 ms | p99 ms |\n|---|---|---|---|")
        for name, r in [("token create (fsynced)", create), ("AppRole login", approle), ("userpass login (argon2id, 4 conns)", userpass)]:
            print(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
        os.makedirs(os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"), exist_ok=True)
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "out/auth.json"), "w") as f:
            json.dump({"reads": reads, "token_create": create, "approle_login": approle, "userpass_login": userpass}, f, indent=2)
    finally:
        if proc:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
