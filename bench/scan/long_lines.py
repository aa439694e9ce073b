#!/usr/bin/env python3
"""`coffer scan` time on one very long line against the same bytes cut into
100-byte lines, measured in the same run.

The input is minified-JavaScript-like text (identifiers, numbers, short
string literals, and the words rules anchor on: `token`, `secret`,
`password`, `api_key`, `authorization`...), with a made-up credential
every few kilobytes, so keyword hits are dense as in real bundles and lock
files while findings stay few. Both files hold
the same bytes apart from the newlines; each is scanned with the built-in
rules, best of --rounds, and the single-line time is reported as a ratio of
the split one. Goal: <= 2.0 at 50 MB (scan time linear in the input,
whatever the line length). betterleaks, when installed (`--peers`), runs on
both files too, for reference.

Usage: python3 bench/scan/long_lines.py [--mb 50] [--rounds 3] [--peers /tmp/peers]
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ROOT, build_release  # noqa: E402

COFFER = os.path.join(ROOT, "target/release/coffer")
WORDS = ["token", "secret", "password", "api_key", "authorization", "key", "auth",
         "function", "return", "var", "const", "this", "null", "length", "push"]


def corpus(size):
    """About `size` bytes of minified-looking code, one line."""
    rnd = random.Random(20261204)
    alnum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    parts = []
    n = 0
    while n < size:
        w = rnd.choice(WORDS)
        r = rnd.random()
        if r < 0.25:
            piece = f'{w}:"{"".join(rnd.choice(alnum) for _ in range(rnd.randint(4, 11)))}",'
        elif r < 0.5:
            piece = f"{w}_{rnd.randint(0, 999)}=function(a,b){{return a.{w}(b)}};"
        elif r < 0.9995:
            piece = f"{w}[{rnd.randint(0, 99999)}]&&"
        else:
            # A made-up GitHub token (not live) now and then.
            piece = f'gh:"ghp_{"".join(rnd.choice(alnum) for _ in range(36))}",'
        parts.append(piece)
        n += len(piece)
    return "".join(parts).encode()


def split(data, width=100):
    return b"\n".join(data[i:i + width] for i in range(0, len(data), width))


def best(cmd, rounds):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
        if p.returncode not in (0, 1):
            raise SystemExit(f"{cmd} exited {p.returncode}")
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peers", default="/tmp/peers")
    args = ap.parse_args()
    build_release(["-p", "coffer", "--bin", "coffer"])
    data = corpus(args.mb << 20)
    with tempfile.TemporaryDirectory() as tmp:
        one = os.path.join(tmp, "one-line")
        many = os.path.join(tmp, "short-lines")
        os.makedirs(one)
        os.makedirs(many)
        with open(os.path.join(one, "bundle.min.js"), "wb") as f:
            f.write(data)
        with open(os.path.join(many, "bundle.min.js"), "wb") as f:
            f.write(split(data))
        tools = {"coffer": lambda d: [COFFER, "scan", "dir", d, "-f", "json", "-r", os.devnull,
                                      "--max-file-size", "0"]}
        bl = os.path.join(args.peers, "bin", "betterleaks")
        if os.path.exists(bl):
            tools["betterleaks"] = lambda d: [bl, d, "--silent", "-o", os.path.join(tmp, "bl.json")]
        print(f"{len(data) / 1e6:.0f} MB, best of {args.rounds}")
        for name, cmd in tools.items():
            t_many = best(cmd(many), args.rounds)
            t_one = best(cmd(one), args.rounds)
            print(f"{name:12} 100-byte lines {t_many:7.2f} s   one line {t_one:7.2f} s   "
                  f"ratio {t_one / t_many:5.2f}")


if __name__ == "__main__":
    main()
