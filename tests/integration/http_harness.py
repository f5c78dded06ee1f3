"""Helpers of the HTTP tests: a Cluster whose coordinator also serves HTTP (--http_port=0; the
port is read from its "http listening on PORT" line), plain HTTP calls with timeouts, and the
Node clients under tests/npm (installed once with `npm ci`, under a lock, when missing).
"""

import fcntl
import json
import os
import queue
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request

from serving_harness import Cluster

SOURCE_DIR = os.environ.get("MLA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
NPM_DIR = os.path.join(SOURCE_DIR, "tests", "npm")
NODE = "/usr/bin/node" if os.path.exists("/usr/bin/node") else "node"


class HttpCluster(Cluster):
    """A Cluster with the HTTP port on (self.http_port, self.base_url)."""

    def __init__(self, extra_flags=(), **kwargs):
        super().__init__(extra_flags=["--http_port=0", *extra_flags], **kwargs)
        self.http_port = None

    def __enter__(self):
        super().__enter__()
        try:
            lines = queue.Queue()
            threading.Thread(target=lambda: lines.put(self.coordinator.popen.stdout.readline()),
                             daemon=True).start()
            try:
                line = lines.get(timeout=30)
            except queue.Empty:
                raise AssertionError("the coordinator printed no http port within 30 s")
            if not line.startswith("http listening on "):
                raise AssertionError(f"second line {line!r}:\n{self.coordinator.log()}")
            self.http_port = int(line.split()[3])
        except BaseException:
            self.__exit__(*__import__("sys").exc_info())
            raise
        return self

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.http_port}"


def http(method, url, body=None, timeout=60):
    """(status, headers, body text); HTTP errors are returned, not raised."""
    data = None if body is None else (body if isinstance(body, bytes) else
                                      json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def ensure_node_modules(timeout=600):
    """Runs `npm ci` in tests/npm unless its node_modules matches the lockfile already."""
    lock_path = os.path.join(tempfile.gettempdir(), "mla_npm_ci.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = os.path.join(NPM_DIR, "node_modules", ".package-lock.json")
        lockfile = os.path.join(NPM_DIR, "package-lock.json")
        if os.path.exists(marker) and os.path.getmtime(marker) >= os.path.getmtime(lockfile):
            return
        result = subprocess.run(["npm", "ci", "--prefix", NPM_DIR, "--no-audit", "--no-fund"],
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(f"npm ci failed:\n{result.stdout}\n{result.stderr}")


def run_node(script, env, timeout=300):
    """Runs tests/npm/<script> with node; returns its stdout. AssertionError on failure."""
    result = subprocess.run([NODE, os.path.join(NPM_DIR, script)], capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, **env})
    print(result.stdout, end="")
    if result.returncode != 0:
        raise AssertionError(f"{script} exited {result.returncode}:\n{result.stdout}\n"
                             f"{result.stderr}")
    return result.stdout
