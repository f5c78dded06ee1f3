"""The client API with TLS and a bearer token, with real processes and throwaway certificates
(openssl at test time): the coordinator's client port serves TLS and requires
"authorization: Bearer <token>"; the worker joins on its own mutual-TLS port with its client
certificate.

Right credentials work (Python grpc.ssl_channel_credentials + the token: tokens equal the
in-process generation); a plaintext client, a client trusting another CA, and calls without or
with a wrong token are refused with the right codes. Health stays open (probes carry no token).
"""

import sys

import grpc

from security_cluster import TOKEN, Certificates, SecureCluster, tls_channel
from serving_harness import Client, pb, reference_tokens, request, run_checks


def expect_code(call, code, what):
    try:
        call()
    except grpc.RpcError as error:
        assert error.code() == code, f"{what}: {error.code()} {error.details()}"
        print(f"  {what}: {error.code().name} ({error.details()})")
        return
    raise AssertionError(f"{what}: succeeded, expected {code}")


def main():
    certs = Certificates()
    with SecureCluster(certs) as cluster:
        cluster.start_secure_worker([f"--tls_dir={certs.worker.dir}"])
        cluster.wait_serving()
        port = cluster.port

        def right_credentials_work():
            tokens, last = cluster.client.generate(request([5, 6, 7, 8], 12))
            assert tokens == reference_tokens([5, 6, 7, 8], 12), tokens
            assert last.finish_reason == pb.FINISH_REASON_LENGTH, last
            assert cluster.client.info().vocab_size == 1024
            status = cluster.client.status()
            assert status.serving and len(status.workers) == 1, status

        def token_in_metadata_by_hand():
            channel = tls_channel(port, certs.ca.pem())
            client = Client(port, channel=channel)
            info = client._info(pb.GetModelInfoRequest(), timeout=10,
                                metadata=[("authorization", f"Bearer {TOKEN}")])
            assert info.vocab_size == 1024, info
            client.close()

        def missing_token_is_unauthenticated():
            client = Client(port, channel=tls_channel(port, certs.ca.pem()))
            code = grpc.StatusCode.UNAUTHENTICATED
            expect_code(lambda: client.generate(request([1, 2], 3)), code, "Generate, no token")
            expect_code(client.info, code, "GetModelInfo, no token")
            expect_code(client.status, code, "GetClusterStatus, no token")
            assert client.health() == "SERVING"  # health is open to probes, by design
            client.close()

        def wrong_token_is_unauthenticated():
            code = grpc.StatusCode.UNAUTHENTICATED
            for token in ["wrong", TOKEN + "x", TOKEN[:-1]]:
                client = Client(port, channel=tls_channel(port, certs.ca.pem(), token))
                expect_code(lambda: client.generate(request([1, 2], 3)), code,
                            f"Generate, token {token!r}")
                expect_code(client.info, code, f"GetModelInfo, token {token!r}")
                client.close()
            client = Client(port, channel=tls_channel(port, certs.ca.pem()))
            expect_code(lambda: client._info(pb.GetModelInfoRequest(), timeout=10,
                                             metadata=[("authorization", TOKEN)]),
                        code, "token without the Bearer scheme")
            client.close()

        def plaintext_client_is_refused():
            client = Client(port)  # insecure channel to the TLS port
            expect_code(lambda: client._info(pb.GetModelInfoRequest(), timeout=5,
                                             metadata=[("authorization", f"Bearer {TOKEN}")]),
                        grpc.StatusCode.UNAVAILABLE, "plaintext client")
            client.close()

        def client_trusting_another_ca_is_refused():
            client = Client(port, channel=tls_channel(port, certs.other_ca.pem(), TOKEN))
            expect_code(lambda: client.info(), grpc.StatusCode.UNAVAILABLE,
                        "client that does not trust the server's CA")
            client.close()

        def worker_services_are_not_on_the_client_port():
            channel = tls_channel(port, certs.ca.pem(), TOKEN)
            store_get = channel.unary_unary("/mla.v1.RendezvousStore/Get",
                                            request_serializer=lambda x: x,
                                            response_deserializer=lambda x: x)
            expect_code(lambda: store_get(b"", timeout=5), grpc.StatusCode.UNIMPLEMENTED,
                        "RendezvousStore on the client port")
            channel.close()

        return run_checks([right_credentials_work, token_in_metadata_by_hand,
                           missing_token_is_unauthenticated, wrong_token_is_unauthenticated,
                           plaintext_client_is_refused, client_trusting_another_ca_is_refused,
                           worker_services_are_not_on_the_client_port])


if __name__ == "__main__":
    sys.exit(main())
