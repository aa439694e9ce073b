#!/usr/bin/env python3
"""A small service that queries PostgreSQL in a loop with the credentials
coffer agent renders for it, and never drops a query when they change.

It reads its connection from a JSON file (APP_DB_CONFIG, default
./db.json): {"host", "port", "database", "user", "password"}. On SIGHUP it
reads the file again, connects with the new credentials and only then
closes the old connection. It keeps count of queries that worked and
failed, and writes them to APP_STATUS (default ./status.json) twice a
second and when it stops (SIGTERM, SIGINT).

Needs pg8000 (pure Python): pip install pg8000
"""

import json
import os
import signal
import sys
import time

import pg8000.native

CONFIG = os.environ.get("APP_DB_CONFIG", "db.json")
STATUS = os.environ.get("APP_STATUS", "status.json")
INTERVAL = float(os.environ.get("APP_QUERY_INTERVAL", "0.02"))

reload_requested = False
running = True


def on_hup(_sig, _frame):
    global reload_requested
    reload_requested = True


def on_stop(_sig, _frame):
    global running
    running = False


def connect():
    with open(CONFIG) as f:
        c = json.load(f)
    conn = pg8000.native.Connection(
        user=c["user"],
        password=c["password"],
        host=c.get("host", "127.0.0.1"),
        port=int(c.get("port", 5432)),
        database=c.get("database", "postgres"),
    )
    return conn, c["user"]


def main():
    signal.signal(signal.SIGHUP, on_hup)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    global reload_requested
    conn, user = connect()
    stats = {"ok": 0, "failed": 0, "users": [user], "errors": []}
    last_write = 0.0
    while running:
        if reload_requested:
            reload_requested = False
            try:
                new, new_user = connect()
            except Exception as e:  # keep the old connection: it still works
                stats["errors"].append(f"reconnect: {e}")
            else:
                old, conn, user = conn, new, new_user
                old.close()
                stats["users"].append(user)
                print(f"app: switched to {user}", file=sys.stderr, flush=True)
        try:
            conn.run("SELECT 1")
            stats["ok"] += 1
        except Exception as e:
            stats["failed"] += 1
            stats["errors"] = (stats["errors"] + [str(e)])[-5:]
            try:
                conn, user = connect()
            except Exception:
                pass
        now = time.monotonic()
        if now - last_write > 0.5:
            write(stats)
            last_write = now
        time.sleep(INTERVAL)
    write(stats)
    conn.close()


def write(stats):
    tmp = STATUS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.replace(tmp, STATUS)


if __name__ == "__main__":
    main()
