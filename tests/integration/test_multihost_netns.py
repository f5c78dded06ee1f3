"""Multi-host serving without a loopback shortcut: the coordinator and each of the tp=2 x pp=2
workers run in a network namespace of their own, each with its own address on a bridge (veth
pairs made here, as root), and talk only over those addresses: worker control, the Gloo
rendezvous store, and the Gloo connections between the workers. The client reaches the
coordinator through the bridge's own address. The generated tokens must equal the single-rank
in-process model's. Skips, printing why, where namespaces cannot be made (not root, no iproute2).
"""

import os
import subprocess
import sys

from serving_harness import (CHECKPOINT, COORDINATOR, WORKER, Client, Process, reference_tokens,
                             request, run_checks, wait_for)

TAG = f"mla{os.getpid() % 100000}"
BRIDGE = f"{TAG}br"
SUBNET = f"10.213.{os.getpid() % 200 + 20}"
HOSTS = 5  # coordinator + 4 workers


def ip(*args, netns=None):
    command = ["ip", *args] if netns is None else ["ip", "netns", "exec", netns, "ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


def make_hosts():
    """The bridge, and one namespace per host: returns [(netns, address)]."""
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("addr", "add", f"{SUBNET}.254/24", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    hosts = []
    for i in range(HOSTS):
        ns, veth, peer = f"{TAG}h{i}", f"{TAG}v{i}", f"{TAG}b{i}"
        ip("netns", "add", ns)
        ip("link", "add", veth, "type", "veth", "peer", "name", peer)
        ip("link", "set", veth, "netns", ns)
        ip("link", "set", peer, "master", BRIDGE)
        ip("link", "set", peer, "up")
        ip("addr", "add", f"{SUBNET}.{i + 1}/24", "dev", veth, netns=ns)
        ip("link", "set", veth, "up", netns=ns)
        ip("link", "set", "lo", "up", netns=ns)
        hosts.append((ns, f"{SUBNET}.{i + 1}"))
    return hosts


def remove_hosts():
    for i in range(HOSTS):
        subprocess.run(["ip", "netns", "del", f"{TAG}h{i}"], capture_output=True, timeout=30)
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, timeout=30)


def can_make_namespaces():
    if os.geteuid() != 0:
        return "not root"
    probe = f"{TAG}probe"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"'ip netns add' failed: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def tp2_pp2_across_namespaces():
    prompt, max_tokens = [5, 77, 300, 12, 9, 640, 41], 8
    want = reference_tokens(prompt, max_tokens)
    log_dir = subprocess.run(["mktemp", "-d"], capture_output=True, text=True).stdout.strip()
    processes, client = [], None
    hosts = make_hosts()
    try:
        (coord_ns, coord_addr), workers = hosts[0], hosts[1:]
        port = 50000 + os.getpid() % 10000
        processes.append(Process("coordinator", [
            "ip", "netns", "exec", coord_ns, COORDINATOR, f"--checkpoint={CHECKPOINT}",
            f"--address={coord_addr}", f"--port={port}", "--tp=2", "--pp=2",
            "--num_cache_blocks=64"], log_dir))
        for i, (ns, addr) in enumerate(workers):
            processes.append(Process(f"worker{i}", [
                "ip", "netns", "exec", ns, WORKER, f"--coordinator={coord_addr}:{port}",
                f"--checkpoint={CHECKPOINT}", "--connect_timeout_s=30"], log_dir))
        client = Client(port, host=coord_addr)
        wait_for(lambda: client.health() == "SERVING", 90, "the group to serve")
        tokens, _ = client.generate(request(prompt, max_tokens), timeout=120)
        print(f"  hosts: coordinator {coord_addr}, workers {[a for _, a in workers]}")
        print(f"  tokens {tokens} (single-rank: {want})")
        assert tokens == want
        logs = "".join(p.log() for p in processes)
        assert "127.0.0.1" not in logs, "a process used loopback:\n" + logs
    except BaseException:
        for p in processes:
            print(f"---- {p.name} ----\n{p.log()}", file=sys.stderr)
        raise
    finally:
        if client is not None:
            client.close()
        for p in processes:
            p.kill()
        remove_hosts()


if __name__ == "__main__":
    why = can_make_namespaces()
    if why is not None:
        print(f"SKIP multi-host test: network namespaces cannot be made here ({why})")
        sys.exit(0)
    sys.exit(run_checks([tp2_pp2_across_namespaces]))
