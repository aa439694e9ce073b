"""Drives coffer's transit engine with the unmodified hvac client
(`client.secrets.transit.*`): keys, encrypt/decrypt with batches, rotate and
rewrap, data keys, HMAC, signatures, export, backup and restore.

Usage: python transit.py ADDR ROOT_TOKEN   (exit status 0 means every check passed)
"""
import base64
import sys

import hvac
import hvac.exceptions

from checks import check, raises


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def main(addr, root_token):
    c = hvac.Client(url=addr, token=root_token)
    c.sys.enable_secrets_engine("transit", path="transit")
    t = c.secrets.transit

    t.create_key(name="app", exportable=True, allow_plaintext_backup=True)
    key = t.read_key(name="app")["data"]
    check(key["type"] == "aes256-gcm96" and key["latest_version"] == 1, f"read_key: {key}")
    check("app" in t.list_keys()["data"]["keys"], "list_keys")

    pt = b64(b"card 4111")
    ct = t.encrypt_data(name="app", plaintext=pt)["data"]["ciphertext"]
    check(ct.startswith("vault:v1:"), ct)
    check(t.decrypt_data(name="app", ciphertext=ct)["data"]["plaintext"] == pt, "decrypt_data")

    batch = t.encrypt_data(name="app", batch_input=[{"plaintext": pt}, {"plaintext": b64(b"two")}])
    items = batch["data"]["batch_results"]
    check(len(items) == 2 and all(i["ciphertext"].startswith("vault:v1:") for i in items), f"batch: {items}")
    dec = t.decrypt_data(name="app", batch_input=[{"ciphertext": i["ciphertext"]} for i in items])
    check(dec["data"]["batch_results"][1]["plaintext"] == b64(b"two"), "batch decrypt")

    t.rotate_key(name="app")
    check(t.read_key(name="app")["data"]["latest_version"] == 2, "rotate_key")
    rewrapped = t.rewrap_data(name="app", ciphertext=ct)["data"]["ciphertext"]
    check(rewrapped.startswith("vault:v2:"), rewrapped)
    check(t.decrypt_data(name="app", ciphertext=rewrapped)["data"]["plaintext"] == pt, "rewrapped decrypts")
    t.update_key_configuration(name="app", min_decryption_version=2)
    raises(hvac.exceptions.InvalidRequest, lambda: t.decrypt_data(name="app", ciphertext=ct),
           "version 1 is below min_decryption_version")

    dk = t.generate_data_key(name="app", key_type="plaintext", bits=256)["data"]
    check(len(base64.b64decode(dk["plaintext"])) == 32, "data key length")
    check(t.decrypt_data(name="app", ciphertext=dk["ciphertext"])["data"]["plaintext"] == dk["plaintext"],
          "wrapped data key decrypts to the plaintext one")

    mac = t.generate_hmac(name="app", hash_input=pt)["data"]["hmac"]
    check(t.verify_signed_data(name="app", hash_input=pt, hmac=mac)["data"]["valid"] is True, "hmac verifies")

    t.create_key(name="signer", key_type="ecdsa-p256")
    sig = t.sign_data(name="signer", hash_input=pt, hash_algorithm="sha2-256")["data"]["signature"]
    ok = t.verify_signed_data(name="signer", hash_input=pt, signature=sig, hash_algorithm="sha2-256")
    check(ok["data"]["valid"] is True, "ecdsa signature verifies")
    bad = t.verify_signed_data(name="signer", hash_input=b64(b"other"), signature=sig, hash_algorithm="sha2-256")
    check(bad["data"]["valid"] is False, "a different input does not verify")
    t.create_key(name="rsa", key_type="rsa-2048")
    rs = t.sign_data(name="rsa", hash_input=pt, signature_algorithm="pkcs1v15")["data"]["signature"]
    check(t.verify_signed_data(name="rsa", hash_input=pt, signature=rs, signature_algorithm="pkcs1v15")
          ["data"]["valid"] is True, "rsa pkcs1v15")

    exported = t.export_key(name="app", key_type="encryption-key", version="latest")["data"]
    check(len(base64.b64decode(exported["keys"]["2"])) == 32, f"export_key: {exported}")
    raises(hvac.exceptions.InvalidRequest, lambda: t.export_key(name="signer", key_type="signing-key"),
           "a key that is not exportable")

    backup = t.backup_key(name="app")["data"]["backup"]
    raises(hvac.exceptions.InvalidRequest, lambda: t.restore_key(backup=backup), "restore over an existing key")
    t.restore_key(backup=backup, name="app-copy")
    check(t.decrypt_data(name="app-copy", ciphertext=rewrapped)["data"]["plaintext"] == pt, "restored key decrypts")

    raises(hvac.exceptions.InvalidRequest, lambda: t.delete_key(name="app-copy"), "deletion not allowed yet")
    t.update_key_configuration(name="app-copy", deletion_allowed=True)
    t.delete_key(name="app-copy")
    raises(hvac.exceptions.InvalidPath, lambda: t.read_key(name="app-copy"), "deleted key is gone")

    check(len(t.generate_random_bytes(n_bytes=16)["data"]["random_bytes"]) > 0, "random bytes")
    digest = t.hash_data(hash_input=b64(b"abc"), algorithm="sha2-256")["data"]["sum"]
    check(digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", digest)
    print("all checks passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
