#!/usr/bin/env python3
"""Builds a real git history for the history-scan benchmark: every release
of a PyPI package (its wheels, downloaded with pip), committed oldest first,
one commit per release, then packed as a clone would be.

    python3 bench/scan/history_corpus.py --package boto3 --out /tmp/corpus/boto3-history
"""

import argparse
import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

from pip._vendor.packaging.version import InvalidVersion, Version


def versions(pip, package):
    out = subprocess.run([*pip, "index", "versions", package], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Available versions:"):
            found = []
            for v in line.split(":", 1)[1].split(","):
                try:
                    found.append(Version(v.strip()))
                except InvalidVersion:
                    pass
            return [str(v) for v in sorted(found)]
    sys.exit(f"pip lists no versions of {package}")


def download(pip, package, version, cache):
    dest = cache / version
    if dest.is_dir() and any(dest.glob("*.whl")):
        return version, next(dest.glob("*.whl"))
    dest.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [*pip, "download", "--quiet", "--no-deps", "--only-binary", ":all:", "-d", str(dest), f"{package}=={version}"],
        capture_output=True,
        text=True,
    )
    wheels = list(dest.glob("*.whl"))
    return version, (wheels[0] if r.returncode == 0 and wheels else None)


def git(repo, *args, env=None):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--package", default="boto3")
    ap.add_argument("--count", type=int, default=0, help="newest N releases (0: all)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", default="/tmp/corpus/wheel-cache")
    ap.add_argument("--jobs", type=int, default=8)
    a = ap.parse_args()
    pip = [sys.executable, "-m", "pip"]
    all_versions = versions(pip, a.package)
    if a.count:
        all_versions = all_versions[-a.count :]
    cache = pathlib.Path(a.cache) / a.package
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        got = dict(pool.map(lambda v: download(pip, a.package, v, cache), all_versions))
    releases = [(v, got[v]) for v in all_versions if got.get(v)]
    print(f"{len(releases)} of {len(all_versions)} releases have a wheel", file=sys.stderr)
    repo = pathlib.Path(a.out)
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    base = 1_400_000_000
    for i, (version, wheel) in enumerate(releases):
        for entry in repo.iterdir():
            if entry.name != ".git":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        with zipfile.ZipFile(wheel) as z:
            z.extractall(repo)
        date = f"{base + i * 86_400} +0000"
        env = dict(os.environ, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=release", "-c", "user.email=release@example.invalid",
            "-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", f"{a.package} {version}", env=env)
        if version == releases[len(releases) // 2][0]:
            git(repo, "tag", f"v{version}")
    git(repo, "gc", "-q", "--aggressive", "--prune=now")
    print(f"{repo}: {len(releases)} commits", file=sys.stderr)


if __name__ == "__main__":
    main()
