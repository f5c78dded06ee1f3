"""The coordinator's plain-HTTP endpoints: /health and /ready as probes see them (ready only once
the worker serves), /metrics in Prometheus' text format (checked by a strict parser below) with
counters that move as requests complete, OpenAI-shaped errors for unknown routes and models and
bad bodies, and one structured log line per finished request.
"""

import http.client as http_client
import json
import math
import re
import socket
import sys
import time

from http_harness import HttpCluster, http
from serving_harness import pb, request, run_checks, wait_for

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*)?\}})? (\S+)(?: (-?\d+))?$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_value(text):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", text):
        raise AssertionError(f"bad sample value {text!r}")
    return float(text)


def parse_labels(text):
    labels = {}
    for m in re.finditer(rf'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"', text or ""):
        if m.group(1) in labels:
            raise AssertionError(f"label {m.group(1)} twice in {text!r}")
        labels[m.group(1)] = m.group(2)
    return labels


def parse_prometheus(text):
    """Strict text-format (0.0.4) parser: {(name, frozenset(labels)): value} and the types.

    Checks: the text ends with a newline; HELP/TYPE lines are well formed, at most one each per
    family and before its samples; a family's samples are contiguous; no series twice; counters
    are >= 0; histograms have ascending `le` buckets, cumulative counts, a +Inf bucket equal to
    _count, and a _sum."""
    assert text.endswith("\n"), "no final newline"
    samples, types, helps, done_families, samples_seen = {}, {}, set(), set(), set()
    current = None

    def family_of(name):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
                return base
        return name

    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                assert len(parts) >= 3 and re.fullmatch(NAME, parts[2]), where
                name = parts[2]
                assert name not in done_families, f"HELP/TYPE after its samples: {where}"
                assert name not in samples_seen, f"HELP/TYPE after its samples: {where}"
                if parts[1] == "TYPE":
                    assert name not in types, f"TYPE twice: {where}"
                    assert len(parts) == 4 and parts[3] in TYPES, where
                    types[name] = parts[3]
                else:
                    assert name not in helps, f"HELP twice: {where}"
                    helps.add(name)
                if current is not None and current != name:
                    done_families.add(current)
                current = name
            continue
        assert line, f"empty line {number}"
        m = SAMPLE.match(line)
        assert m, f"not a sample: {where}"
        name, labels, value = m.group(1), parse_labels(m.group(2)), parse_value(m.group(3))
        family = family_of(name)
        assert family in types, f"sample before its TYPE: {where}"
        assert family not in done_families, f"family {family} not contiguous: {where}"
        if current != family:
            if current is not None:
                done_families.add(current)
            current = family
        samples_seen.add(family)
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"series twice: {where}"
        samples[key] = value
        if types[family] == "counter":
            assert value >= 0, where

    for family, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, labels), value in samples.items():
            if name == family + "_bucket":
                rest = frozenset((k, v) for k, v in labels if k != "le")
                le = dict(labels)["le"]
                series.setdefault(rest, []).append((parse_value(le), value))
        for rest, buckets in series.items():
            buckets.sort()
            assert buckets[-1][0] == math.inf, f"{family}: no +Inf bucket"
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), f"{family}: buckets not cumulative {counts}"
            assert samples[(family + "_count", rest)] == counts[-1], f"{family}: _count"
            assert (family + "_sum", rest) in samples, f"{family}: no _sum"
    return samples, types


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def main():
    with HttpCluster(extra_flags=["--max_waiting=1", "--max_num_seqs=1"]) as cluster:
        base = cluster.base_url

        def probes_before_and_after_workers():
            status, _, body = http("GET", base + "/health", timeout=10)
            assert status == 200, (status, body)
            status, _, body = http("GET", base + "/ready", timeout=10)
            assert status == 503, (status, body)
            status, _, body = http("POST", base + "/v1/completions",
                                   {"prompt": "hi", "max_tokens": 2}, timeout=30)
            error = json.loads(body)["error"]
            assert status == 503 and error["type"] and error["message"], (status, body)
            print(f"  before workers: /ready 503, completion {status} {error['message']!r}")
            cluster.start_worker()
            cluster.wait_serving()
            wait_for(lambda: http("GET", base + "/ready", timeout=10)[0] == 200, 30, "/ready 200")

        def errors_have_openai_shape():
            cases = [("GET", "/v1/nothing", None, 404, None),
                     ("POST", "/v1/completions", b"{not json", 400, None),
                     ("POST", "/v1/completions", {"prompt": "x", "max_tokens": -1}, 400,
                      "max_tokens"),
                     ("POST", "/v1/completions", {"prompt": "x", "top_p": 0}, 400, "top_p"),
                     ("POST", "/v1/completions", {"prompt": "x", "echo": True}, 400, "echo"),
                     ("POST", "/v1/chat/completions", {"messages": []}, 400, "messages"),
                     ("POST", "/v1/completions", {"model": "gpt-4", "prompt": "x"}, 404, "model"),
                     ("GET", "/v1/models/gpt-4", None, 404, "model")]
            for method, path, body, want, param in cases:
                status, headers, text = http(method, base + path, body, timeout=30)
                error = json.loads(text)["error"]
                assert status == want, (path, body, status, text)
                assert set(error) == {"message", "type", "param", "code"}, error
                assert error["param"] == param, (path, body, error)
                assert headers.get("Content-Type", "").startswith("application/json"), headers

        def queue_full_is_429():
            # max_num_seqs=1, max_waiting=1: one runs, one waits, the third is refused. The one
            # running lasts seconds (2000 tokens: ~4 s on an idle core), so that the second is
            # seen waiting even when a loaded machine starts the two threads far apart (400
            # tokens, under a second, were missed once on a loaded 2-core run).
            import threading
            results = []
            def long_one():
                results.append(http("POST", base + "/v1/completions",
                                    {"prompt": "a", "max_tokens": 2000, "ignore_eos": True},
                                    timeout=300)[0])
            threads = [threading.Thread(target=long_one) for _ in range(2)]
            for t in threads:
                t.start()
            wait_for(lambda: cluster.client.status().num_waiting == 1, 60, "one waiting")
            status, _, text = http("POST", base + "/v1/completions", {"prompt": "b"}, timeout=30)
            assert status == 429, (status, text)
            assert json.loads(text)["error"]["code"] == "queue_full", text
            for t in threads:
                t.join(timeout=300)
            assert results == [200, 200], results

        def metrics_parse_and_move():
            status, headers, text = http("GET", base + "/metrics", timeout=10)
            assert status == 200 and headers["Content-Type"].startswith("text/plain"), headers
            before, types = parse_prometheus(text)
            for name in ("mla_requests_total", "mla_prompt_tokens_total",
                         "mla_generation_tokens_total"):
                assert types[name] == "counter", name
            for name in ("mla_time_to_first_token_seconds", "mla_inter_token_latency_seconds"):
                assert types[name] == "histogram", name
            for name in ("mla_num_requests_waiting", "mla_num_requests_running",
                         "mla_cache_blocks_free", "mla_cache_blocks_used"):
                assert types[name] == "gauge", name
            usage = []
            for i in range(3):
                status, _, body = http("POST", base + "/v1/completions",
                                       {"prompt": f"count {i}", "max_tokens": 5,
                                        "ignore_eos": True}, timeout=120)
                assert status == 200, body
                usage.append(json.loads(body)["usage"])
            http("POST", base + "/v1/completions", {"prompt": "x", "temperature": -1}, timeout=30)
            tokens, _ = cluster.client.generate(request([5, 6, 7], 4))
            after, _ = parse_prometheus(http("GET", base + "/metrics", timeout=10)[2])
            def delta(name, **labels):
                return metric(after, name, **labels) - metric(before, name, **labels)
            assert delta("mla_requests_total", api="http", status="ok") == 3
            assert delta("mla_requests_total", api="http", status="invalid_argument") == 1
            assert delta("mla_requests_total", api="grpc", status="ok") == 1
            assert delta("mla_generation_tokens_total") == 15 + 4
            assert delta("mla_prompt_tokens_total") == sum(u["prompt_tokens"] for u in usage) + 3
            assert delta("mla_time_to_first_token_seconds_count") == 4
            assert delta("mla_inter_token_latency_seconds_count") == 4 * 3 + 3
            assert types["mla_worker_step_seconds"] == "histogram"
            assert delta("mla_worker_step_seconds_count", rank="0") > 0
            assert metric(after, "mla_num_requests_running") == 0
            assert metric(after, "mla_cache_blocks_used") == 0
            assert metric(after, "mla_cache_blocks_free") > 0
            print(f"  {len(after)} series; requests_total ok/http "
                  f"{metric(after, 'mla_requests_total', api='http', status='ok')}")

        def one_log_line_per_request():
            status, _, body = http("POST", base + "/v1/chat/completions",
                                   {"messages": [{"role": "user", "content": "hi"}],
                                    "max_tokens": 3, "ignore_eos": True}, timeout=120)
            assert status == 200, body
            rid = json.loads(body)["id"]
            pattern = re.compile(rf"request request_id={re.escape(rid)} api=http status=ok "
                                 r"finish_reason=length prompt_tokens=\d+ completion_tokens=3 "
                                 r"ttft_ms=[\d.]+ total_ms=[\d.]+$", re.M)
            line = wait_for(lambda: pattern.search(cluster.coordinator.log()), 10, "log line")
            print(f"  {line.group(0)}")
            assert len(re.findall(rf"request_id={re.escape(rid)} ", cluster.coordinator.log())) == 1

        def not_ready_while_draining():
            # Last: SIGTERM. A live request finishes; meanwhile /ready is 503, /health 200.
            import threading
            result = {}
            def long_one():
                result["answer"] = http("POST", base + "/v1/completions",
                                        {"prompt": "a", "max_tokens": 300, "ignore_eos": True},
                                        timeout=120)
            thread = threading.Thread(target=long_one)
            thread.start()
            wait_for(lambda: cluster.client.status().num_running == 1, 30, "running")
            cluster.terminate_coordinator()
            wait_for(lambda: http("GET", base + "/ready", timeout=5)[0] == 503, 10, "/ready 503")
            assert http("GET", base + "/health", timeout=5)[0] == 200
            thread.join(timeout=120)
            status, _, body = result["answer"]
            assert status == 200 and json.loads(body)["usage"]["completion_tokens"] == 300, body
            assert cluster.coordinator.wait(timeout=60) == 0

        def disconnect_frees_the_cache():
            conn = http_client.HTTPConnection("127.0.0.1", cluster.http_port, timeout=30)
            conn.request("POST", "/v1/completions",
                         json.dumps({"prompt": "go on", "max_tokens": 4000, "ignore_eos": True,
                                     "stream": True}),
                         {"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200, response.status
            assert response.getheader("Content-Type").startswith("text/event-stream")
            first = response.read(7)  # chunked transfer encoding, decoded
            assert first == b"data: {", first
            wait_for(lambda: cluster.client.status().num_running == 1, 30, "running")
            conn.sock.shutdown(socket.SHUT_RDWR)
            conn.close()
            wait_for(lambda: cluster.client.status().num_running == 0, 30, "cancelled")
            assert cluster.client.status().cache_blocks_free == \
                cluster.client.status().cache_blocks_total
            line = wait_for(lambda: re.search(r"api=http status=ok finish_reason=cancelled "
                                              r"prompt_tokens=\d+ completion_tokens=(\d+)",
                                              cluster.coordinator.log()), 10, "log line")
            assert int(line.group(1)) < 4000, line.group(0)
            print(f"  {line.group(0)}")

        return run_checks([probes_before_and_after_workers, errors_have_openai_shape,
                           queue_full_is_429, metrics_parse_and_move, one_log_line_per_request,
                           disconnect_frees_the_cache, not_ready_while_draining])


if __name__ == "__main__":
    sys.exit(main())
