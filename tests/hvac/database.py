"""Drives coffer's database engine and lease API with the unmodified hvac
client (`client.secrets.database.*`, `client.sys.*lease*`) against a private
PostgreSQL that checks passwords; logins are tried with `psql`.

Usage: PG_PORT=... PG_PASSWORD=... python database.py ADDR ROOT_TOKEN
"""
import os
import subprocess
import sys

import hvac
import hvac.exceptions

from checks import check, raises

CREATE = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"


def can_login(port, user, password):
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
    r = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", port, "-U", user, "-d", "postgres", "-tAc", "SELECT 1"],
        env=env, capture_output=True, text=True,
    )
    return r.returncode == 0 and r.stdout.strip() == "1"


def main(addr, root_token):
    port, pg_password = os.environ["PG_PORT"], os.environ["PG_PASSWORD"]
    c = hvac.Client(url=addr, token=root_token)
    c.sys.enable_secrets_engine("database", path="database")
    db = c.secrets.database

    db.configure(
        name="pg",
        plugin_name="postgresql-database-plugin",
        allowed_roles=["app"],
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{port}/postgres?sslmode=disable",
        username="postgres",
        password=pg_password,
    )
    conn = db.read_connection(name="pg")["data"]
    check(conn["plugin_name"] == "postgresql-database-plugin", f"read_connection: {conn}")
    check("password" not in conn["connection_details"], "no password in read_connection")
    check(db.list_connections()["data"]["keys"] == ["pg"], "list_connections")

    db.create_role(name="app", db_name="pg", creation_statements=[CREATE], default_ttl="1h", max_ttl="2h")
    role = db.read_role(name="app")["data"]
    check(role["default_ttl"] == 3600 and role["max_ttl"] == 7200, f"read_role: {role}")
    check(db.list_roles()["data"]["keys"] == ["app"], "list_roles")

    creds = db.generate_credentials(name="app")
    user, password = creds["data"]["username"], creds["data"]["password"]
    lease = creds["lease_id"]
    check(lease.startswith("database/creds/app/") and creds["lease_duration"] == 3600, f"creds: {creds}")
    check(can_login(port, user, password), "the new user logs in")
    check(not can_login(port, user, password + "x"), "a wrong password does not")

    info = c.sys.read_lease(lease_id=lease)["data"]
    check(info["id"] == lease and info["renewable"] is True and 0 < info["ttl"] <= 3600, f"read_lease: {info}")
    renewed = c.sys.renew_lease(lease_id=lease, increment=1800)
    check(renewed["lease_id"] == lease and renewed["lease_duration"] == 1800, f"renew_lease: {renewed}")
    listed = c.sys.list_leases(prefix="database/creds/app/")["data"]["keys"]
    check(lease.rsplit("/", 1)[1] in listed, f"list_leases: {listed}")

    c.sys.revoke_lease(lease_id=lease)
    check(not can_login(port, user, password), "revoked user cannot log in")
    raises(hvac.exceptions.InvalidRequest, lambda: c.sys.read_lease(lease_id=lease), "read a revoked lease")

    others = [db.generate_credentials(name="app") for _ in range(2)]
    c.sys.revoke_prefix(prefix="database/creds/app")
    for o in others:
        check(not can_login(port, o["data"]["username"], o["data"]["password"]), "revoke_prefix dropped it")

    last = db.generate_credentials(name="app")
    c.sys.revoke_force(prefix="database/creds/app")
    raises(hvac.exceptions.InvalidRequest, lambda: c.sys.read_lease(lease_id=last["lease_id"]), "revoke_force dropped the record")

    db.delete_role(name="app")
    db.delete_connection(name="pg")
    print("all checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
