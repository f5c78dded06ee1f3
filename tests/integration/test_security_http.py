"""The HTTP (OpenAI-compatible) port with TLS and the bearer token, with real processes and
throwaway certificates: the coordinator's --tls_cert/--tls_key and --api_token_file apply to the
HTTP port as to the gRPC client port. HTTPS with the token works; no token or a wrong one is 401
(with WWW-Authenticate: Bearer); /health and /ready stay open for probes; plain HTTP to the port
and a client that does not trust the CA fail.
"""

import json
import ssl
import sys
import urllib.error
import urllib.request

from http_harness import HttpCluster
from security_cluster import TOKEN, Certificates, SecureCluster
from serving_harness import run_checks


class SecureHttpCluster(HttpCluster, SecureCluster):
    pass


def call(url, context, token=None, body=None, timeout=60):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers=headers,
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def main():
    certs = Certificates()
    with SecureHttpCluster(certs=certs) as cluster:
        cluster.start_secure_worker([f"--tls_dir={certs.worker.dir}"])
        cluster.wait_serving()
        base = f"https://127.0.0.1:{cluster.http_port}"
        trusted = ssl.create_default_context(cafile=certs.ca.cert)

        def https_with_token_works():
            status, _, body = call(f"{base}/v1/models", trusted, TOKEN)
            assert status == 200, (status, body)
            model = json.loads(body)["data"][0]["id"]
            status, _, body = call(f"{base}/v1/completions", trusted, TOKEN,
                                   {"model": model, "prompt": "hello", "max_tokens": 4})
            assert status == 200, (status, body)
            print(f"  completion: {json.loads(body)['choices'][0]['text']!r}")
            status, _, body = call(f"{base}/metrics", trusted, TOKEN)
            assert status == 200, (status, body)

        def missing_or_wrong_token_is_401():
            for token in [None, "wrong", TOKEN + "x"]:
                for path in ["/v1/models", "/metrics"]:
                    status, headers, body = call(f"{base}{path}", trusted, token)
                    assert status == 401, (token, path, status, body)
                    assert headers.get("WWW-Authenticate") == "Bearer", headers
                    assert json.loads(body)["error"]["code"] == "invalid_api_key", body
            status, _, body = call(f"{base}/v1/completions", trusted, None,
                                   {"model": "x", "prompt": "hello", "max_tokens": 4})
            assert status == 401, (status, body)
            print("  no token / wrong token: 401")

        def probes_are_open():
            assert call(f"{base}/health", trusted)[0] == 200
            assert call(f"{base}/ready", trusted)[0] == 200

        def plain_http_fails():
            try:
                status, _, _ = call(f"http://127.0.0.1:{cluster.http_port}/health", None,
                                    timeout=10)
            except (urllib.error.URLError, ConnectionError, OSError) as error:
                print(f"  plain HTTP: {type(error).__name__}")
                return
            assert status >= 400, status  # never a served page
            print(f"  plain HTTP: HTTP {status}")

        def untrusted_certificate_fails():
            other = ssl.create_default_context(cafile=certs.other_ca.cert)
            try:
                call(f"{base}/health", other, timeout=10)
            except urllib.error.URLError as error:
                assert isinstance(error.reason, ssl.SSLCertVerificationError), error
                print("  client trusting another CA: certificate verify failed")
                return
            raise AssertionError("a client trusting another CA connected")

        return run_checks([https_with_token_works, missing_or_wrong_token_is_401,
                           probes_are_open, plain_http_fails, untrusted_certificate_fails])


if __name__ == "__main__":
    sys.exit(main())
