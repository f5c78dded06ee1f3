"""Mutual TLS between the coordinator and its workers, with real processes and throwaway
certificates (openssl at test time). The coordinator serves WorkerControl and the rendezvous
store on --worker_port and requires client certificates signed by its CA (--worker_tls_dir);
workers verify the coordinator's certificate (--tls_dir: ca.crt, tls.crt, tls.key).

Refused, and the group does not form: a plaintext worker, a worker with no client certificate,
one whose certificate comes from another CA, and one that cannot verify the coordinator (trusts
another CA). Then two right workers (tp=2, so the ranks also meet through the mTLS rendezvous
store) form the group and serve the in-process tokens.
"""

import sys
import time

from security_cluster import Certificates, SecureCluster
from serving_harness import pb, reference_tokens, request, run_checks


def registered(status):
    """The workers that hold a rank (the status also lists the missing ranks, state unset)."""
    return [w for w in status.workers if w.state != pb.WORKER_STATE_UNSPECIFIED]


def main():
    certs = Certificates()
    with SecureCluster(certs, tp=2) as cluster:

        def refused(name, tls_flags, port=None):
            # A refused handshake either keeps the worker from ever connecting (it gives up after
            # --connect_timeout_s and exits 1) or, where the refusal comes after the client's
            # side of the handshake (TLS 1.3 client certificates), breaks every stream at once
            # (it keeps retrying). Either way it must never register.
            worker = cluster.start_secure_worker(tls_flags, connect_timeout_s=3, port=port)
            try:
                code = worker.wait(timeout=8)
            except Exception:
                code = None
            status = cluster.client.status()
            worker.kill()
            log = worker.log()
            assert code in (None, 1), f"{name}: exit code {code}\n{log}"
            assert "rank " not in log and "loaded " not in log, f"{name}: joined\n{log}"
            assert not registered(status) and not status.serving, status
            how = "gave up connecting, exit 1" if code == 1 else "every stream refused"
            print(f"  {name}: refused ({how})")

        def plaintext_worker_is_refused():
            refused("plaintext worker", [])

        def worker_without_client_certificate_is_refused():
            refused("worker without a client certificate", [f"--tls_ca={certs.ca.cert}"])

        def worker_with_certificate_from_another_ca_is_refused():
            refused("worker with another CA's certificate",
                    [f"--tls_dir={certs.stranger_trusting_ours}"])

        def worker_that_cannot_verify_the_coordinator_refuses_it():
            refused("worker trusting another CA", [f"--tls_dir={certs.worker_trusting_other}"])

        def worker_on_the_client_port_does_not_join():
            # TLS without a client certificate gets through the client port's handshake, but
            # WorkerControl is not served there.
            worker = cluster.start_secure_worker([f"--tls_ca={certs.ca.cert}"],
                                                 connect_timeout_s=3, port=cluster.port)
            time.sleep(3)
            status = cluster.client.status()
            worker.kill()
            assert not registered(status) and not status.serving, status
            print("  worker on the client port: not registered")

        def right_workers_form_the_group():
            for _ in range(2):
                cluster.start_secure_worker([f"--tls_dir={certs.worker.dir}"])
            cluster.wait_serving(timeout=90)
            status = cluster.client.status()
            assert status.serving and len(registered(status)) == 2, status
            tokens, _ = cluster.client.generate(request([9, 8, 7], 10))
            assert tokens == reference_tokens([9, 8, 7], 10), tokens
            print(f"  tp=2 over mTLS: {tokens}")

        return run_checks([plaintext_worker_is_refused,
                           worker_without_client_certificate_is_refused,
                           worker_with_certificate_from_another_ca_is_refused,
                           worker_that_cannot_verify_the_coordinator_refuses_it,
                           worker_on_the_client_port_does_not_join,
                           right_workers_form_the_group])


if __name__ == "__main__":
    sys.exit(main())
