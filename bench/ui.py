#!/usr/bin/env python3
"""The web UI's weight: what a first visit downloads, and what the UI adds to
the binary.

- First load: the page at /ui/, then everything it references (stylesheet,
  script) and every module those import, followed transitively, fetched with
  Accept-Encoding: gzip as a browser would; bytes on the wire and bytes as
  written. Goal: under 300 kB compressed.
- Serving cost: requests per second for the largest module vs sys/health on
  the same server (a ratio; wrk).
- Binary: the size of this release build against --baseline (a release build
  of the commit before the UI). Goal: under 3 MB added.

Needs: Rust; wrk (Debian) for the serving ratio.
Usage: python3 bench/ui.py [--baseline PATH] [--duration 5]
"""
import argparse
import gzip
import os
import re
import shutil
import urllib.request

from harness import ROOT, build_release, start_printing_addr, wrk

IMPORT = re.compile(r"""(?:import|from)\s*(?:\(\s*)?['"](\.{1,2}/[^'"]+)['"]""")
REF = re.compile(r"""(?:src|href)="(/ui/[^"]+)\"""")


def fetch(url, gz=True):
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gz else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
        enc = r.headers.get("Content-Encoding")
    return body, (gzip.decompress(body) if enc == "gzip" else body)


def first_load(base):
    wire = raw = 0
    files = []
    seen = set()
    queue = ["/ui/"]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        body, text = fetch(base + path)
        wire += len(body)
        raw += len(text)
        files.append((path, len(body), len(text)))
        src = text.decode()
        if path == "/ui/":
            queue += REF.findall(src)
        elif path.endswith(".js"):
            folder = path.rsplit("/", 1)[0]
            for rel in IMPORT.findall(src):
                parts = (folder + "/" + rel).split("/")
                out = []
                for p in parts:
                    if p == "..":
                        out.pop()
                    elif p != ".":
                        out.append(p)
                queue.append("/".join(out))
    return wire, raw, sorted(files, key=lambda f: -f[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="a release coffer built without the UI")
    ap.add_argument("--duration", type=int, default=5)
    args = ap.parse_args()
    build_release(["-p", "coffer", "--bin", "coffer"])
    binary = os.path.join(ROOT, "target/release/coffer")
    proc, base = start_printing_addr([binary, "server", "--dev", "--dev-listen-address", "127.0.0.1:0"])
    try:
        wire, raw, files = first_load(base)
        print(f"first load of /ui/: {len(files)} files, {wire / 1024:.1f} KiB compressed "
              f"({raw / 1024:.1f} KiB as written); goal < 300 kB")
        for path, w, r in files[:5]:
            print(f"  {path}: {w} B compressed, {r} B")
        if shutil.which("wrk"):
            largest = files[0][0]
            ui = wrk(base, None, args.duration, path=largest)
            health = wrk(base, None, args.duration, path="/v1/sys/health")
            print(f"serving {largest}: {ui['rps']:.0f} req/s vs sys/health {health['rps']:.0f} req/s "
                  f"({ui['rps'] / health['rps']:.2f}x)")
    finally:
        proc.terminate()
        proc.wait()
    size = os.path.getsize(binary)
    print(f"binary: {size / 1e6:.2f} MB")
    if args.baseline:
        before = os.path.getsize(args.baseline)
        print(f"baseline: {before / 1e6:.2f} MB; the UI adds {(size - before) / 1e6:.3f} MB "
              f"({size / before:.4f}x); goal < 3 MB")


if __name__ == "__main__":
    main()
