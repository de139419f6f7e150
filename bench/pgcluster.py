"""A throwaway PostgreSQL cluster for the benchmarks: `initdb` into a temporary
directory, the server on a free loopback port with the durability settings of a
real deployment (fsync, synchronous_commit and full_page_writes on, as
PostgreSQL ships them), stopped and removed by `stop()`.

The test suite has its own (sealstream-testkit's `postgres` module), which turns
fsync off for speed; a benchmark must not. Needs Debian's `postgresql` package
(scripts/setup-test-peers installs it). When run as root, the server runs as
the `postgres` user, as PostgreSQL requires.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise SystemExit("PostgreSQL not found (scripts/setup-test-peers installs it)")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A running cluster; `url` is a database URL for `market serve`."""

    def __init__(self, parent: str | None = None, max_connections: int = 200) -> None:
        self.bin = _bin()
        self.root = Path(tempfile.mkdtemp(prefix="sealstream-bench-pg-", dir=parent))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.data = self.root / "data"
        self.port = _free_port()
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                   "-E", "UTF8"])
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                   "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                         f"-c max_connections={max_connections}", "start"])
        self._run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                   "market"])
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/market"

    def _run(self, cmd: list[str]) -> None:
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")

    def server_pids(self) -> list[int]:
        """The cluster's processes (postmaster and backends), for CPU accounting."""
        try:
            main = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        pids = [main]
        try:
            children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
            pids += [int(p) for p in children]
        except OSError:
            pass
        return pids

    def stop(self) -> None:
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])
        except SystemExit:
            pass
        time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
