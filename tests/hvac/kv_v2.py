"""Drives coffer's KV version 2 engine with the unmodified hvac client
(`client.secrets.kv.v2.*`) on dev mode's `secret/` mount, then upgrades a
version 1 mount in place and reads the old data through the v2 API.

Usage: python kv_v2.py ADDR ROOT_TOKEN   (exit status 0 means every check passed)
"""
import sys

import hvac
import hvac.exceptions

from checks import check, raises


def main(addr, root_token):
    c = hvac.Client(url=addr, token=root_token)
    kv = c.secrets.kv.v2
    mounts = c.sys.list_mounted_secrets_engines()
    check(mounts["secret/"]["options"]["version"] == "2", "dev mode mounts secret/ as KV v2")

    # Configuration, as External Secrets Operator and operators set it.
    kv.configure(max_versions=5, cas_required=False, delete_version_after="0s")
    cfg = kv.read_configuration()["data"]
    check(cfg["max_versions"] == 5 and cfg["cas_required"] is False, "config read back")

    # Metadata before the first write (ESO writes custom_metadata this way).
    kv.update_metadata(path="apps/web", custom_metadata={"managed-by": "external-secrets"})
    first = kv.create_or_update_secret(path="apps/web", secret={"user": "web", "password": "one"}, cas=0)
    check(first["data"]["version"] == 1, "first write is version 1")
    check(first["data"]["custom_metadata"] == {"managed-by": "external-secrets"}, "custom metadata in the write answer")
    raises(hvac.exceptions.InvalidRequest,
           lambda: kv.create_or_update_secret(path="apps/web", secret={"x": "y"}, cas=0),
           "stale cas is refused")
    kv.create_or_update_secret(path="apps/web", secret={"user": "web", "password": "two"}, cas=1)
    kv.patch(path="apps/web", secret={"password": "three"})

    latest = kv.read_secret_version(path="apps/web", raise_on_deleted_version=True)["data"]
    check(latest["data"] == {"user": "web", "password": "three"}, "patch merged into the latest")
    check(latest["metadata"]["version"] == 3, "patch made version 3")
    check(latest["metadata"]["created_time"].endswith("Z"), "RFC 3339 time")
    v1 = kv.read_secret_version(path="apps/web", version=1, raise_on_deleted_version=True)["data"]
    check(v1["data"]["password"] == "one", "old version readable")
    check(kv.read_secret(path="apps/web", raise_on_deleted_version=True)["data"]["data"]["password"] == "three",
          "read_secret reads the latest")

    # Soft delete, undelete, destroy.
    kv.delete_latest_version_of_secret(path="apps/web")
    gone = kv.read_secret_version(path="apps/web", raise_on_deleted_version=False)
    check(gone["data"]["data"] is None and gone["data"]["metadata"]["deletion_time"] != "",
          "deleted version answers its metadata when asked not to raise")
    raises(hvac.exceptions.InvalidPath,
           lambda: kv.read_secret_version(path="apps/web", raise_on_deleted_version=True),
           "deleted version raises by default")
    kv.undelete_secret_versions(path="apps/web", versions=[3])
    check(kv.read_secret_version(path="apps/web", raise_on_deleted_version=True)["data"]["data"]["password"] == "three",
          "undelete restores data")
    kv.destroy_secret_versions(path="apps/web", versions=[1])
    meta = kv.read_secret_metadata(path="apps/web")["data"]
    check(meta["versions"]["1"]["destroyed"] is True, "destroyed flag in metadata")
    check(meta["current_version"] == 3 and meta["oldest_version"] == 1, "current and oldest versions")
    check(meta["custom_metadata"] == {"managed-by": "external-secrets"}, "custom metadata kept")
    raises(hvac.exceptions.InvalidPath,
           lambda: kv.read_secret_version(path="apps/web", version=1, raise_on_deleted_version=True),
           "destroyed version has no data")

    # Metadata settings and listing of nested paths.
    kv.update_metadata(path="apps/web", max_versions=2, cas_required=True)
    raises(hvac.exceptions.InvalidRequest,
           lambda: kv.create_or_update_secret(path="apps/web", secret={"x": "y"}),
           "cas_required refuses a write without cas")
    kv.create_or_update_secret(path="apps/web", secret={"user": "web", "password": "four"}, cas=3)
    meta = kv.read_secret_metadata(path="apps/web")["data"]
    check(sorted(meta["versions"]) == ["3", "4"], "max_versions=2 trims old versions")
    kv.create_or_update_secret(path="apps/db/primary", secret={"dsn": "postgres://"})
    check(kv.list_secrets(path="apps")["data"]["keys"] == ["db/", "web"], "nested list")
    check(kv.list_secrets(path="apps/db")["data"]["keys"] == ["primary"], "list of a folder")
    kv.delete_metadata_and_all_versions(path="apps/web")
    raises(hvac.exceptions.InvalidPath, lambda: kv.read_secret_metadata(path="apps/web"),
           "metadata delete removes the key")

    # The version-agnostic helper hvac offers picks v2 from the mount options.
    check(c.secrets.kv.default_kv_version in ("1", "2", 1, 2), "hvac kv helper present")

    # Upgrade a v1 mount in place; old values become version 1.
    c.sys.enable_secrets_engine("kv", path="legacy", options={"version": "1"})
    c.secrets.kv.v1.create_or_update_secret(path="old/one", secret={"k": "v"}, mount_point="legacy")
    c.sys.tune_mount_configuration(path="legacy", options={"version": "2"})
    check(c.sys.read_mount_configuration(path="legacy")["data"]["options"]["version"] == "2",
          "tune reports the new version")
    up = kv.read_secret_version(path="old/one", mount_point="legacy", raise_on_deleted_version=True)["data"]
    check(up["data"] == {"k": "v"} and up["metadata"]["version"] == 1, "v1 data kept as version 1")
    raises(hvac.exceptions.InvalidRequest,
           lambda: c.sys.tune_mount_configuration(path="legacy", options={"version": "1"}),
           "downgrade refused")
    c.sys.disable_secrets_engine("legacy")
    print("hvac kv v2: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
