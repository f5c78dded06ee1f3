"""A worker that never registers: the coordinator does not serve a partial model. It logs a line
naming the missing ranks after --worker_wait_s, GetClusterStatus shows them (state UNSPECIFIED,
and `detail`), health stays NOT_SERVING, and Generate gets UNAVAILABLE with a message naming the
missing ranks. Two cases: tp=1 x pp=1 with no worker, and tp=1 x pp=2 with one worker (which is
given no assignment: it registers, but nothing is loaded until the group is whole). And a worker
asked to run on a GPU it cannot use (--device=99: no such GPU, or a CPU-only build) exits 1 at
once with a message naming the device, without registering.
"""

import sys

import grpc

from serving_harness import Cluster, pb, request, run_checks, wait_for


def check_missing(cluster, missing, present):
    client = cluster.client
    label = ("rank " if len(missing) == 1 else "ranks ") + ", ".join(map(str, missing))
    line = wait_for(lambda: next((l for l in cluster.coordinator.log().splitlines()
                                  if "not serving" in l and f"missing {label}" in l), None),
                    15, f"a log line naming {label}")
    print(f"  log: {line}")
    status = client.status()
    assert not status.serving and f"missing {label}" in status.detail, status
    states = {w.rank: w.state for w in status.workers}
    assert len(states) == len(missing) + len(present), status
    for r in missing:
        assert states[r] == pb.WORKER_STATE_UNSPECIFIED, status
    for r in present:
        assert states[r] == pb.WORKER_STATE_REGISTERED, status
    print(f"  status detail: {status.detail!r}")
    assert client.health() == "NOT_SERVING" and client.health("mla.v1.Inference") == "NOT_SERVING"
    try:
        client.generate(request([1, 2, 3], 4), timeout=10)
        raise AssertionError("Generate should be UNAVAILABLE")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        assert f"missing {label}" in error.details(), error.details()
        print(f"  Generate: UNAVAILABLE {error.details()!r}")


def main():
    def no_worker_at_all():
        with Cluster(extra_flags=["--worker_wait_s=1"]) as cluster:
            check_missing(cluster, missing=[0], present=[])
            assert cluster.coordinator.popen.poll() is None, "the coordinator should stay up"

    def one_of_two_pipeline_stages():
        with Cluster(pp=2, extra_flags=["--worker_wait_s=1"]) as cluster:
            worker = cluster.start_worker()
            wait_for(lambda: cluster.client.status().workers[0].state ==
                     pb.WORKER_STATE_REGISTERED, 15, "rank 0 registered")
            check_missing(cluster, missing=[1], present=[0])
            assert "loaded" not in worker.log(), "half a model must not be loaded"
            assert worker.popen.poll() is None, "the worker waits for its group"

    def unusable_device():
        with Cluster(extra_flags=["--worker_wait_s=1"]) as cluster:
            worker = cluster.start_worker(["--device=99"])
            code = worker.wait(timeout=30)
            log = worker.log()
            assert code == 1, (code, log)
            assert "device" in log and "99" in log, log
            assert "registered" not in cluster.coordinator.log(), cluster.coordinator.log()
            print(f"  {log.strip().splitlines()[-1]}")

    return run_checks([no_worker_at_all, one_of_two_pipeline_stages, unusable_device])


if __name__ == "__main__":
    sys.exit(main())
