"""A serving_harness Cluster with TLS: the client port serves TLS (server certificate only) and
takes a bearer token; workers get their own port (--worker_port) with mutual TLS. Shared by the
test_security_*.py tests. Certificates come from security_certs (openssl, at test time).
"""

import os
import re
import tempfile

import grpc

from security_certs import Pki
from serving_harness import Client, Cluster

TOKEN = "s3cret-token-for-tests"


class Certificates:
    """ca (the deployment's CA); coordinator and worker leaves signed by it; an `other` CA with
    its own leaf (a certificate the deployment never issued)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mla_pki_")
        pki = Pki(self.dir)
        self.ca = pki.ca("ca")
        self.other_ca = pki.ca("other-ca")
        self.coordinator = pki.leaf(self.ca, "coordinator")
        self.worker = pki.leaf(self.ca, "worker")
        self.stranger = pki.leaf(self.other_ca, "stranger")
        # A worker certificate from our CA that trusts only the other CA (cannot verify us).
        self.worker_trusting_other = self.worker.secret_dir(self.other_ca, "worker-trusts-other")
        # A certificate from the other CA that trusts ours (the coordinator must refuse it).
        self.stranger_trusting_ours = self.stranger.secret_dir(self.ca, "stranger-trusts-ours")
        self.token_file = os.path.join(self.dir, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")


def tls_channel(port, ca_pem, token=None):
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    if token is not None:
        credentials = grpc.composite_channel_credentials(
            credentials, grpc.access_token_call_credentials(token))
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


class SecureCluster(Cluster):
    def __init__(self, certs, tp=1, extra_flags=()):
        self.certs = certs
        self.worker_port = None  # --worker_port=0: read from the coordinator's log
        flags = [f"--tls_cert={certs.coordinator.cert}", f"--tls_key={certs.coordinator.key}",
                 f"--api_token_file={certs.token_file}", "--worker_port=0",
                 f"--worker_tls_dir={certs.coordinator.dir}", *extra_flags]
        super().__init__(tp=tp, extra_flags=flags)

    def __enter__(self):
        super().__enter__()
        # Logged before "listening on": "... worker port N: TLS (mutual ...)".
        match = re.search(r"worker port (\d+):", self.coordinator.log())
        if match is None:
            self.__exit__(AssertionError, None, None)
            raise AssertionError(f"no worker port in the log:\n{self.coordinator.log()}")
        self.worker_port = int(match.group(1))
        self.client.close()
        self.client = Client(self.port, channel=tls_channel(self.port, self.certs.ca.pem(),
                                                             TOKEN))
        return self

    def start_secure_worker(self, tls_flags, connect_timeout_s=30, port=None):
        """A worker dialling the worker port (or `port`) with the given TLS flags."""
        return self.start_worker([f"--coordinator=127.0.0.1:{port or self.worker_port}",
                                  f"--connect_timeout_s={connect_timeout_s}", *tls_flags])
