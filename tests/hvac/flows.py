"""Drives coffer with the unmodified hvac client: KV v1, mounts, policies,
tokens, userpass, AppRole (with a wrapped secret ID) and wrapping.

Usage: python flows.py ADDR ROOT_TOKEN   (exit status 0 means every check passed)
"""
import sys

import hvac
import hvac.exceptions

from checks import check


def main(addr, root_token):
    root = hvac.Client(url=addr, token=root_token)
    check(root.is_authenticated(), "root token authenticates")
    check(root.sys.is_initialized(), "initialized")
    check(not root.sys.is_sealed(), "unsealed")

    # Mounts and KV v1 (top-level keys of sys/mounts, 204s, lists).
    root.sys.enable_secrets_engine("kv", path="hvac-kv", options={"version": "1"})
    check("hvac-kv/" in root.sys.list_mounted_secrets_engines(), "mount listed at the top level")
    resp = root.secrets.kv.v1.create_or_update_secret(path="app", secret={"user": "app", "password": "pw"}, mount_point="hvac-kv")
    check(resp.status_code == 204, "KV write answers 204")
    got = root.secrets.kv.v1.read_secret(path="app", mount_point="hvac-kv")
    check(got["data"] == {"user": "app", "password": "pw"}, "KV read")
    check(root.secrets.kv.v1.list_secrets(path="", mount_point="hvac-kv")["data"]["keys"] == ["app"], "KV list")
    try:
        root.secrets.kv.v1.read_secret(path="missing", mount_point="hvac-kv")
        check(False, "missing secret raises")
    except hvac.exceptions.InvalidPath:
        pass

    # Policies: hvac sends dict policies as JSON text.
    root.sys.create_or_update_policy(name="hvac-reader", policy={"path": {"hvac-kv/*": {"capabilities": ["read", "list"]}}})
    check("hvac-reader" in root.sys.list_policies()["data"]["policies"], "policy listed")
    check("hvac-kv/*" in root.sys.read_policy(name="hvac-reader")["data"]["rules"], "policy text read back")

    # Tokens.
    created = root.auth.token.create(policies=["hvac-reader"], ttl="1h", meta={"team": "a"})
    child = hvac.Client(url=addr, token=created["auth"]["client_token"])
    me = child.auth.token.lookup_self()["data"]
    check(me["policies"] == ["default", "hvac-reader"] and isinstance(me["ttl"], int), "lookup-self shape")
    check(child.secrets.kv.v1.read_secret(path="app", mount_point="hvac-kv")["data"]["user"] == "app", "child reads")
    try:
        child.secrets.kv.v1.create_or_update_secret(path="app", secret={"x": "y"}, mount_point="hvac-kv")
        check(False, "write without capability raises")
    except hvac.exceptions.Forbidden:
        pass
    child.auth.token.renew_self(increment="30m")
    child.auth.token.revoke_self()
    check(not child.is_authenticated(), "revoked token no longer authenticates")

    # userpass.
    root.sys.enable_auth_method("userpass", path="hvac-up")
    root.auth.userpass.create_or_update_user(username="ana", password="pw-ana", policies=["hvac-reader"], mount_point="hvac-up")
    user = hvac.Client(url=addr)
    login = user.auth.userpass.login(username="ana", password="pw-ana", mount_point="hvac-up")
    check(login["auth"]["metadata"]["username"] == "ana", "userpass metadata")
    check(user.secrets.kv.v1.read_secret(path="app", mount_point="hvac-kv")["data"]["password"] == "pw", "userpass token reads")
    try:
        hvac.Client(url=addr).auth.userpass.login(username="ana", password="wrong", mount_point="hvac-up")
        check(False, "bad password raises")
    except hvac.exceptions.InvalidRequest:
        pass

    # AppRole, with the secret ID delivered wrapped.
    root.sys.enable_auth_method("approle", path="hvac-ar")
    root.auth.approle.create_or_update_approle(role_name="web", token_policies=["hvac-reader"], mount_point="hvac-ar")
    role_id = root.auth.approle.read_role_id(role_name="web", mount_point="hvac-ar")["data"]["role_id"]
    wrapped = root.auth.approle.generate_secret_id(role_name="web", mount_point="hvac-ar", wrap_ttl="2m")
    check(isinstance(wrapped["wrap_info"]["ttl"], int), "wrap_info.ttl is an int")
    unwrapped = hvac.Client(url=addr, token=wrapped["wrap_info"]["token"]).sys.unwrap()
    secret_id = unwrapped["data"]["secret_id"]
    app = hvac.Client(url=addr)
    app.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point="hvac-ar")
    check(app.secrets.kv.v1.read_secret(path="app", mount_point="hvac-kv")["data"]["user"] == "app", "approle token reads")
    try:
        hvac.Client(url=addr, token=wrapped["wrap_info"]["token"]).sys.unwrap()
        check(False, "second unwrap raises")
    except hvac.exceptions.InvalidRequest:
        pass

    root.sys.disable_auth_method("hvac-ar")
    root.sys.disable_secrets_engine("hvac-kv")
    print("hvac flows: all checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
