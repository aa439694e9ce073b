"""Drives coffer's audit API with the unmodified hvac client
(`client.sys.*audit*`, `calculate_hash`) on a server whose configuration
allows API-enabled devices inside AUDIT_DIR.

Usage: AUDIT_DIR=... python audit.py ADDR ROOT_TOKEN
"""
import json
import os
import sys

import hvac
import hvac.exceptions

from checks import check, raises


def main(addr, root_token):
    audit_dir = os.environ["AUDIT_DIR"]
    c = hvac.Client(url=addr, token=root_token)
    log = os.path.join(audit_dir, "hvac.log")

    # hvac's own argument shape: options.path (the legacy name of file_path).
    c.sys.enable_audit_device("file", path="hvac-file", description="from hvac", options={"path": log})
    devices = c.sys.list_enabled_audit_devices()
    check("hvac-file/" in devices["data"], f"listed: {devices}")
    check(devices["hvac-file/"]["type"] == "file", f"top-level copy: {devices}")
    check(devices["hvac-file/"]["description"] == "from hvac", "description")

    raises(
        hvac.exceptions.InvalidRequest,
        lambda: c.sys.enable_audit_device("file", path="escape", options={"path": "/etc/coffer.log"}),
        "a file outside audit_dir",
    )

    c.sys.enable_secrets_engine("kv", path="kv", options={"version": "1"})
    c.secrets.kv.v1.create_or_update_secret(path="app", secret={"password": "hvac-MARKER"}, mount_point="kv")
    read = c.secrets.kv.v1.read_secret(path="app", mount_point="kv")

    hashed = c.sys.calculate_hash("hvac-file", "hvac-MARKER")
    check(hashed["data"]["hash"].startswith("hmac-sha256:"), f"hash: {hashed}")
    check(hashed["hash"] == hashed["data"]["hash"], "top-level copy of hash")

    with open(log) as f:
        entries = [json.loads(line) for line in f]
    check(all("hvac-MARKER" not in json.dumps(e) for e in entries), "no plaintext in the log")
    mine = [e for e in entries if e["request"]["id"] == read["request_id"]]
    check([e["type"] for e in mine] == ["request", "response"], f"entries of the read: {mine}")
    check(mine[1]["response"]["data"]["password"] == hashed["data"]["hash"], "HMAC matches calculate_hash")

    raises(hvac.exceptions.InvalidRequest, lambda: c.sys.calculate_hash("nope", "x"), "unknown device")

    c.sys.disable_audit_device("hvac-file")
    c.sys.disable_audit_device("hvac-file")  # hvac's tearDown does this too
    check("hvac-file/" not in c.sys.list_enabled_audit_devices()["data"], "disabled")
    print("all checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
