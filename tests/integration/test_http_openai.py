"""The official openai npm client (tests/npm, installed with `npm ci`) against the coordinator's
HTTP API on the tiny checkpoint: completions and chat, streamed and not, a seeded sample, stop
strings, usage, and errors raised as the client's error classes (tests/npm/openai_client_test.mjs).
"""

import sys

from http_harness import HttpCluster, ensure_node_modules, run_node
from serving_harness import run_checks


def main():
    ensure_node_modules()
    with HttpCluster() as cluster:
        cluster.start_worker()
        cluster.wait_serving()
        model = cluster.client.info().name

        def openai_client():
            run_node("openai_client_test.mjs",
                     {"MLA_HTTP_BASE": cluster.base_url, "MLA_MODEL": model}, timeout=600)

        return run_checks([openai_client])


if __name__ == "__main__":
    sys.exit(main())
