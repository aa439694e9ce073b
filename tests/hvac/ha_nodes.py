"""hvac against every node of an HA cluster: writes through standbys are
forwarded, reads work everywhere, the status calls say who is active.

Usage: ha_nodes.py TOKEN URL [URL ...]
"""
import sys

import hvac

from checks import check

token, urls = sys.argv[1], sys.argv[2:]
clients = [hvac.Client(url=u, token=token) for u in urls]
leaders = [c.sys.read_leader_status() for c in clients]
check(sum(1 for l in leaders if l["is_self"]) == 1, f"exactly one node is active: {leaders}")
active_addr = next(u for u, l in zip(urls, leaders) if l["is_self"])
for l in leaders:
    check(l["ha_enabled"] is True, "ha_enabled")
    check(l["leader_address"] == active_addr, f"every node names the active one: {l}")
clients[0].sys.enable_secrets_engine("kv", path="hvac-kv", options={"version": "2"})
for i, c in enumerate(clients):
    check(c.sys.is_initialized() and not c.sys.is_sealed(), f"node {i} initialised, unsealed")
    health = c.sys.read_health_status(standby_ok=True, method="GET")
    check(health["initialized"] and not health["sealed"], f"health of node {i}: {health}")
    c.secrets.kv.v2.create_or_update_secret(mount_point="hvac-kv", path=f"from-{i}", secret={"n": str(i)})
for i in range(len(clients)):
    for j, c in enumerate(clients):
        got = c.secrets.kv.v2.read_secret_version(mount_point="hvac-kv", path=f"from-{i}", raise_on_deleted_version=True)
        check(got["data"]["data"] == {"n": str(i)}, f"node {j} reads what node {i} wrote: {got}")
# A token made through a standby works through every node.
child = clients[-1].auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
for c in clients:
    check(hvac.Client(url=c.url, token=child).auth.token.lookup_self()["data"]["ttl"] > 0, "child token")
print("all checks passed")
