// NcclCommunicator on real GPUs, one forked process per GPU (2 GPUs, and 4 where present).
//
// The parent never touches CUDA or NCCL (a forked child must not inherit a CUDA context): it
// counts GPUs in a probe child, forks one child per rank, and waits for them under a global
// timeout after which it kills them. Rank 0 makes the NCCL unique id and writes it to the other
// ranks through pipes. Each child runs a scenario and exits with 0 (passed) or non-zero; checks
// inside children print "[rank r] ..." and fail the child, and the parent checks every status.
//
// Scenarios: every collective on fresh random data against the host's result (exact: the data
// are small integers, whose float sums are exact; doubles within 1e-12); a CUDA-graph capture
// of an all-reduce (recording mode, on a stream of the test's) and a SiluMul kernel, replayed 10
// times, under a 20 s alarm (two earlier attempts to capture NCCL hung, docs/GPU.md); a missing
// peer (rank 1 skips the call), which must end in DeadlineExceeded on rank 0 within the timeout,
// for an eager call and for a graph replay; and all-reduce latency, eager and graph-replayed
// (median of 200 calls). Seed: MLA_TEST_SEED, else random; always printed.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cuda/ops.h"
#include "worker/nccl_communicator.h"

namespace mla {
namespace {

using Clock = std::chrono::steady_clock;
using Body = std::function<int(NcclCommunicator& comm)>;

int g_rank = -1;  // in a child: its rank
uint32_t g_seed = 0;

#define CHILD_CHECK(cond, ...)                                                          \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "[rank %d] %s:%d: check failed: %s: ", g_rank, __FILE__,      \
                   __LINE__, #cond);                                                    \
      std::fprintf(stderr, __VA_ARGS__);                                                \
      std::fprintf(stderr, "\n");                                                       \
      return 1;                                                                         \
    }                                                                                   \
  } while (0)
#define CHILD_OK(expr)                                                                   \
  do {                                                                                   \
    const absl::Status st_ = (expr);                                                     \
    CHILD_CHECK(st_.ok(), "%s", st_.ToString().c_str());                                 \
  } while (0)
#define CHILD_CUDA(expr)                                                                 \
  do {                                                                                   \
    const cudaError_t e_ = (expr);                                                       \
    CHILD_CHECK(e_ == cudaSuccess, "%s", cudaGetErrorString(e_));                        \
  } while (0)

uint32_t Seed() {
  static const uint32_t seed = [] {
    const char* env = std::getenv("MLA_TEST_SEED");
    const uint32_t s = env != nullptr ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10))
                                      : std::random_device{}();
    std::printf("MLA_TEST_SEED=%u\n", s);
    return s;
  }();
  return seed;
}

// Rank r's input of case `c`: integers in [lo, hi] as floats, the same on every rank that
// computes it (each rank derives every rank's data for the expected result).
std::vector<float> IntData(int rank, int c, int64_t n, int lo, int hi) {
  std::mt19937 rng(g_seed * 7919u + static_cast<uint32_t>(rank) * 104729u +
                   static_cast<uint32_t>(c));
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(dist(rng));
  return v;
}

std::vector<double> RealData(int rank, int c, int64_t n) {
  std::mt19937_64 rng(g_seed * 31u + static_cast<uint64_t>(rank) * 1000003u + c);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<double> v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

// The number of CUDA devices, counted in a child so that the parent stays CUDA-free.
int GpuCount() {
  static const int count = [] {
    const pid_t pid = fork();
    if (pid == 0) {
      int n = 0;
      if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
      _exit(std::min(n, 100));
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 0;
    return WEXITSTATUS(status);
  }();
  return count;
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t r = read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

int ChildMain(int rank, int size, const std::vector<std::array<int, 2>>& pipes,
              std::chrono::milliseconds timeout, const Body& body) {
  g_rank = rank;
  std::string id(NCCL_UNIQUE_ID_BYTES, '\0');
  if (rank == 0) {
    absl::StatusOr<std::string> made = MakeNcclUniqueId();
    CHILD_OK(made.status());
    id = *made;
    for (const auto& p : pipes) CHILD_CHECK(WriteAll(p[1], id.data(), id.size()), "pipe write");
  } else {
    CHILD_CHECK(ReadAll(pipes[rank - 1][0], id.data(), id.size()), "pipe read");
  }
  absl::StatusOr<std::unique_ptr<NcclCommunicator>> comm =
      NcclCommunicator::Create(id, rank, size, /*device=*/rank, timeout);
  CHILD_OK(comm.status());
  const int rc = body(**comm);
  std::fflush(stdout);
  return rc;
}

// Forks `size` ranks running `body`; returns each child's wait status (or -1 if it was killed
// at the global timeout).
std::vector<int> RunGroup(int size, std::chrono::milliseconds timeout, int global_timeout_s,
                          const Body& body) {
  g_seed = Seed();
  std::fflush(stdout);
  std::vector<std::array<int, 2>> pipes(size - 1);
  for (auto& p : pipes) {
    if (pipe(p.data()) != 0) return std::vector<int>(size, -2);
  }
  std::vector<pid_t> pids(size, -1);
  for (int r = 0; r < size; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      const int rc = ChildMain(r, size, pipes, timeout, body);
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(rc);
    }
    pids[r] = pid;
  }
  for (auto& p : pipes) {
    close(p[0]);
    close(p[1]);
  }
  std::vector<int> status(size, -1);
  std::vector<bool> done(size, false);
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(global_timeout_s);
  int left = size;
  while (left > 0 && Clock::now() < deadline) {
    for (int r = 0; r < size; ++r) {
      if (done[r]) continue;
      if (pids[r] < 0) {  // fork failed
        status[r] = -2;
        done[r] = true;
        --left;
        continue;
      }
      int st = 0;
      if (waitpid(pids[r], &st, WNOHANG) == pids[r]) {
        status[r] = st;
        done[r] = true;
        --left;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int r = 0; r < size; ++r) {
    if (done[r]) continue;
    std::printf("rank %d still running after %d s: killed\n", r, global_timeout_s);
    kill(pids[r], SIGKILL);
    waitpid(pids[r], nullptr, 0);
  }
  return status;
}

std::string Describe(int status) {
  if (status == -1) return "killed at the global timeout";
  if (status < 0) return "not started";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "signal " + std::to_string(WTERMSIG(status)) +
           (WTERMSIG(status) == SIGALRM ? " (SIGALRM: its alarm fired, it hung)" : "");
  }
  return "status " + std::to_string(status);
}

void ExpectAllPassed(const std::vector<int>& status, const std::string& what) {
  for (size_t r = 0; r < status.size(); ++r) {
    EXPECT_TRUE(status[r] >= 0 && WIFEXITED(status[r]) && WEXITSTATUS(status[r]) == 0)
        << what << ": rank " << r << ": " << Describe(status[r]);
  }
}

template <typename T>
struct DeviceArray {
  T* p = nullptr;
  explicit DeviceArray(int64_t n) {
    if (cudaMalloc(&p, std::max<int64_t>(n, 1) * sizeof(T)) != cudaSuccess) p = nullptr;
  }
  ~DeviceArray() { cudaFree(p); }
};

// cudaMemcpy from pageable memory may return before the DMA lands, and the communicator's stream
// is non-blocking (not ordered after the legacy stream): wait for the device before returning.
template <typename T>
cudaError_t ToDevice(T* d, const std::vector<T>& h) {
  const cudaError_t err = cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  return err != cudaSuccess ? err : cudaDeviceSynchronize();
}

template <typename T>
cudaError_t ToHost(std::vector<T>& h, const T* d) {
  return cudaMemcpy(h.data(), d, h.size() * sizeof(T), cudaMemcpyDeviceToHost);
}

// ---- Scenario: every collective against the host.
int Collectives(NcclCommunicator& comm) {
  const int rank = comm.rank(), size = comm.size();
  int c = 0;
  for (const int64_t n : {int64_t{1}, int64_t{1000}, int64_t{64} * 7168 + 3}) {
    // All-reduce, float: integers in [-1000, 1000], whose sums are exact.
    {
      ++c;
      DeviceArray<float> d(n);
      CHILD_CUDA(ToDevice(d.p, IntData(rank, c, n, -1000, 1000)));
      CHILD_OK(comm.AllReduceSum(d.p, n));
      std::vector<float> want(n, 0.0f), got(n);
      for (int r = 0; r < size; ++r) {
        const std::vector<float> x = IntData(r, c, n, -1000, 1000);
        for (int64_t i = 0; i < n; ++i) want[i] += x[i];
      }
      CHILD_CUDA(ToHost(got, d.p));
      for (int64_t i = 0; i < n; ++i) {
        CHILD_CHECK(got[i] == want[i], "all-reduce float n=%ld [%ld]: %g != %g", n, i, got[i],
                    want[i]);
      }
    }
    // All-reduce, double: reals in [-1, 1]; NCCL's summation order differs from the host's.
    {
      ++c;
      DeviceArray<double> d(n);
      CHILD_CUDA(ToDevice(d.p, RealData(rank, c, n)));
      CHILD_OK(comm.AllReduceSum(d.p, n));
      std::vector<double> want(n, 0.0), got(n);
      for (int r = 0; r < size; ++r) {
        const std::vector<double> x = RealData(r, c, n);
        for (int64_t i = 0; i < n; ++i) want[i] += x[i];
      }
      CHILD_CUDA(ToHost(got, d.p));
      for (int64_t i = 0; i < n; ++i) {
        CHILD_CHECK(std::fabs(got[i] - want[i]) <= 1e-12, "all-reduce double n=%ld [%ld]: %.17g "
                    "!= %.17g", n, i, got[i], want[i]);
      }
    }
    // All-gather.
    {
      ++c;
      DeviceArray<float> in(n), out(n * size);
      CHILD_CUDA(ToDevice(in.p, IntData(rank, c, n, -1 << 20, 1 << 20)));
      CHILD_OK(comm.AllGather(in.p, n, out.p));
      std::vector<float> got(n * size);
      CHILD_CUDA(ToHost(got, out.p));
      for (int r = 0; r < size; ++r) {
        const std::vector<float> x = IntData(r, c, n, -1 << 20, 1 << 20);
        for (int64_t i = 0; i < n; ++i) {
          CHILD_CHECK(got[r * n + i] == x[i], "all-gather n=%ld part %d [%ld]", n, r, i);
        }
      }
    }
    // Broadcast, from the last rank and from rank 0.
    for (const int root : {size - 1, 0}) {
      ++c;
      DeviceArray<float> d(n);
      CHILD_CUDA(ToDevice(d.p, IntData(rank, c, n, -1 << 20, 1 << 20)));
      CHILD_OK(comm.Broadcast(d.p, n, root));
      std::vector<float> got(n);
      CHILD_CUDA(ToHost(got, d.p));
      const std::vector<float> want = IntData(root, c, n, -1 << 20, 1 << 20);
      for (int64_t i = 0; i < n; ++i) {
        CHILD_CHECK(got[i] == want[i], "broadcast root %d n=%ld [%ld]", root, n, i);
      }
    }
    // Send/Recv between pairs (0,1), (2,3): the lower rank sends first.
    {
      ++c;
      const int peer = rank ^ 1;
      DeviceArray<float> mine(n), theirs(n);
      CHILD_CUDA(ToDevice(mine.p, IntData(rank, c, n, -1 << 20, 1 << 20)));
      if (rank < peer) {
        CHILD_OK(comm.Send(mine.p, n, peer));
        CHILD_OK(comm.Recv(theirs.p, n, peer));
      } else {
        CHILD_OK(comm.Recv(theirs.p, n, peer));
        CHILD_OK(comm.Send(mine.p, n, peer));
      }
      std::vector<float> got(n);
      CHILD_CUDA(ToHost(got, theirs.p));
      const std::vector<float> want = IntData(peer, c, n, -1 << 20, 1 << 20);
      for (int64_t i = 0; i < n; ++i) {
        CHILD_CHECK(got[i] == want[i], "recv from %d n=%ld [%ld]", peer, n, i);
      }
    }
    CHILD_OK(comm.Barrier());
  }
  CHILD_OK(comm.AllReduceSum(static_cast<float*>(nullptr), 0));  // empty: no NCCL call
  if (rank == 0) std::printf("size %d: every collective matched the host\n", size);
  return 0;
}

// The stream a backend records on: one of the test's own, not the communicator's.
struct OwnStream {
  cudaStream_t s = nullptr;
  OwnStream() { cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); }
  ~OwnStream() { cudaStreamDestroy(s); }
};

// ---- Scenario: CUDA-graph capture of {copy in, all-reduce, SiluMul} on a stream of the
// caller's (the communicator in recording mode), replayed 10 times, each replay awaited with
// AwaitStream.
int GraphCapture(NcclCommunicator& comm) {
  alarm(20);  // a hang in capture or replay kills this child with SIGALRM
  const int rank = comm.rank(), size = comm.size();
  const int64_t n = 64 * 7168;
  DeviceArray<float> src(n), buf(n), up(n), out(n);
  CHILD_CUDA(ToDevice(up.p, std::vector<float>(n, 2.0f)));
  OwnStream own;
  cudaStream_t s = own.s;
  NcclCommunicator* comms[] = {&comm};
  CHILD_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  CHILD_CUDA(cudaMemcpyAsync(buf.p, src.p, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
  comm.EnqueueOn(s);
  CHILD_OK(comm.AllReduceSum(buf.p, n));
  comm.EnqueueOn(nullptr);
  CHILD_OK(kernels::cuda::SiluMul(buf.p, up.p, n, out.p, s));
  cudaGraph_t graph = nullptr;
  CHILD_CUDA(cudaStreamEndCapture(s, &graph));
  cudaGraphExec_t exec = nullptr;
  CHILD_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (int it = 0; it < 10; ++it) {
    const int c = 1000 + it;
    CHILD_CUDA(ToDevice(src.p, IntData(rank, c, n, -8, 8)));
    CHILD_CUDA(cudaGraphLaunch(exec, s));
    CHILD_OK(NcclCommunicator::AwaitStream(comms, s, "graph replay"));
    std::vector<float> sum(n, 0.0f), got_sum(n), got(n);
    for (int q = 0; q < size; ++q) {
      const std::vector<float> x = IntData(q, c, n, -8, 8);
      for (int64_t i = 0; i < n; ++i) sum[i] += x[i];
    }
    CHILD_CUDA(ToHost(got_sum, buf.p));
    CHILD_CUDA(ToHost(got, out.p));
    for (int64_t i = 0; i < n; ++i) {
      CHILD_CHECK(got_sum[i] == sum[i], "replay %d sum [%ld]: %g != %g", it, i, got_sum[i],
                  sum[i]);
      const double want = 2.0 * sum[i] / (1.0 + std::exp(-static_cast<double>(sum[i])));
      CHILD_CHECK(std::fabs(got[i] - want) <= 1e-5 + 1e-5 * std::fabs(want),
                  "replay %d silu [%ld]: %g != %g", it, i, got[i], want);
    }
  }
  CHILD_CUDA(cudaGraphExecDestroy(exec));
  CHILD_CUDA(cudaGraphDestroy(graph));
  alarm(0);
  if (rank == 0) {
    std::printf("size %d: CUDA-graph capture of ncclAllReduce + SiluMul works: 10 replays "
                "matched the host\n", size);
  }
  return 0;
}

// ---- Scenario: rank 1 never makes the call; rank 0 must see DeadlineExceeded in time.
constexpr std::chrono::milliseconds kShortTimeout{3000};

int MissingPeer(NcclCommunicator& comm) {
  DeviceArray<float> d(1024);
  CHILD_CUDA(cudaMemset(d.p, 0, 1024 * sizeof(float)));
  CHILD_OK(comm.AllReduceSum(d.p, 1024));  // everyone: the group works
  if (comm.rank() == 1) {
    // Stays alive (a hung peer, not a dead one) until rank 0 has given up.
    std::this_thread::sleep_for(kShortTimeout + std::chrono::seconds(3));
    return 0;
  }
  const Clock::time_point t0 = Clock::now();
  const absl::Status st = comm.AllReduceSum(d.p, 1024);
  const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("rank 0: all-reduce without its peer returned after %.2f s: %s\n", waited,
              st.ToString().c_str());
  CHILD_CHECK(absl::IsDeadlineExceeded(st), "%s", st.ToString().c_str());
  CHILD_CHECK(waited < 3.0 + 2.0, "waited %.2f s for a 3 s timeout", waited);
  const absl::Status again = comm.Barrier();
  CHILD_CHECK(absl::IsFailedPrecondition(again), "after abort: %s", again.ToString().c_str());
  return 0;
}

// ---- Scenario: both ranks record an all-reduce; rank 1 never replays it. Rank 0's replay must
// end in DeadlineExceeded within the timeout (AwaitStream), leaving the communicator aborted.
int MissingPeerInReplay(NcclCommunicator& comm) {
  DeviceArray<float> d(1024);
  CHILD_CUDA(cudaMemset(d.p, 0, 1024 * sizeof(float)));
  OwnStream own;
  NcclCommunicator* comms[] = {&comm};
  CHILD_CUDA(cudaStreamBeginCapture(own.s, cudaStreamCaptureModeThreadLocal));
  comm.EnqueueOn(own.s);
  CHILD_OK(comm.AllReduceSum(d.p, 1024));
  comm.EnqueueOn(nullptr);
  cudaGraph_t graph = nullptr;
  CHILD_CUDA(cudaStreamEndCapture(own.s, &graph));
  cudaGraphExec_t exec = nullptr;
  CHILD_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  CHILD_CUDA(cudaGraphDestroy(graph));
  // The graph holds the communicator: an abort (or the destructor) must see it destroyed first.
  comm.SetBeforeAbort([&exec] {
    cudaGraphExecDestroy(exec);  // freed once the launch in flight has finished
    exec = nullptr;
  });
  CHILD_CUDA(cudaGraphLaunch(exec, own.s));  // everyone once: the recording works
  CHILD_OK(NcclCommunicator::AwaitStream(comms, own.s, "replay 1"));
  if (comm.rank() == 1) {
    std::this_thread::sleep_for(kShortTimeout + std::chrono::seconds(3));
    comm.SetBeforeAbort(nullptr);
    CHILD_CUDA(cudaGraphExecDestroy(exec));
    return 0;  // a hung peer, then a clean exit
  }
  CHILD_CUDA(cudaGraphLaunch(exec, own.s));
  const Clock::time_point t0 = Clock::now();
  const absl::Status st = NcclCommunicator::AwaitStream(comms, own.s, "replay 2");
  const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
  std::printf("rank 0: graph replay without its peer returned after %.2f s: %s\n", waited,
              st.ToString().c_str());
  std::fflush(stdout);
  CHILD_CHECK(absl::IsDeadlineExceeded(st), "%s", st.ToString().c_str());
  CHILD_CHECK(waited < 3.0 + 2.0, "waited %.2f s for a 3 s timeout", waited);
  CHILD_CHECK(exec == nullptr, "the abort did not release the graph first");
  const absl::Status again = comm.Barrier();
  CHILD_CHECK(absl::IsFailedPrecondition(again), "after abort: %s", again.ToString().c_str());
  return 0;
}

// ---- Scenario: all-reduce latency of [rows, 7168] floats, eager and graph-replayed.
double MedianUs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Latency(NcclCommunicator& comm) {
  constexpr int kIters = 200;
  for (const int64_t rows : {1, 64, 2048}) {
    const int64_t n = rows * 7168;
    DeviceArray<float> d(n);
    CHILD_CHECK(d.p != nullptr, "cudaMalloc of %ld floats", n);
    CHILD_CUDA(cudaMemset(d.p, 0, n * sizeof(float)));
    CHILD_OK(comm.Barrier());
    std::vector<double> eager;
    for (int it = 0; it < 20 + kIters; ++it) {
      const Clock::time_point t0 = Clock::now();
      CHILD_OK(comm.AllReduceSum(d.p, n));
      if (it >= 20) {
        eager.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      }
    }
    // One all-reduce per graph, and 20 per graph (a decode step makes many).
    alarm(20);
    double graph_us[2] = {0, 0};
    const int per_graph[2] = {1, 20};
    OwnStream own;
    cudaStream_t s = own.s;
    NcclCommunicator* comms[] = {&comm};
    for (int g = 0; g < 2; ++g) {
      CHILD_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      comm.EnqueueOn(s);
      for (int k = 0; k < per_graph[g]; ++k) CHILD_OK(comm.AllReduceSum(d.p, n));
      comm.EnqueueOn(nullptr);
      cudaGraph_t graph = nullptr;
      CHILD_CUDA(cudaStreamEndCapture(s, &graph));
      cudaGraphExec_t exec = nullptr;
      CHILD_CUDA(cudaGraphInstantiate(&exec, graph, 0));
      CHILD_OK(comm.Barrier());
      std::vector<double> t;
      for (int it = 0; it < 10 + kIters; ++it) {
        const Clock::time_point t0 = Clock::now();
        CHILD_CUDA(cudaGraphLaunch(exec, s));
        CHILD_OK(NcclCommunicator::AwaitStream(comms, s, "graph replay"));
        if (it >= 10) {
          t.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
        }
      }
      graph_us[g] = MedianUs(t) / per_graph[g];
      CHILD_CUDA(cudaGraphExecDestroy(exec));
      CHILD_CUDA(cudaGraphDestroy(graph));
    }
    alarm(0);
    if (comm.rank() == 0) {
      std::printf("latency size %d, all-reduce of [%ld, 7168] floats (%.1f MB): eager median "
                  "%.1f us; graph, 1 per graph: %.1f us; graph, 20 per graph: %.1f us each\n",
                  comm.size(), rows, n * 4 / 1e6, MedianUs(eager), graph_us[0], graph_us[1]);
      std::fflush(stdout);
    }
  }
  return 0;
}

class NcclCommunicatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);  // NVLink multicast off (KINDS.md)
    if (GpuCount() < 2) {
      std::printf("SKIP: %d GPU(s); the NCCL tests need at least 2\n", GpuCount());
      GTEST_SKIP() << GpuCount() << " GPU(s); the NCCL tests need at least 2";
    }
  }
  std::vector<int> Sizes() const {
    std::vector<int> sizes = {2};
    if (GpuCount() >= 4) sizes.push_back(4);
    return sizes;
  }
};

TEST_F(NcclCommunicatorTest, CollectivesMatchHost) {
  for (const int size : Sizes()) {
    ExpectAllPassed(RunGroup(size, std::chrono::seconds(20), 120, Collectives),
                    "collectives, size " + std::to_string(size));
  }
}

TEST_F(NcclCommunicatorTest, GraphCaptureOfAllReduceAndKernel) {
  const std::vector<int> status = RunGroup(2, std::chrono::seconds(20), 60, GraphCapture);
  for (size_t r = 0; r < status.size(); ++r) {
    std::printf("graph capture, rank %zu: %s\n", r, Describe(status[r]).c_str());
  }
  ExpectAllPassed(status, "graph capture");
}

TEST_F(NcclCommunicatorTest, MissingPeerEndsInDeadlineExceeded) {
  ExpectAllPassed(RunGroup(2, kShortTimeout, 60, MissingPeer), "missing peer");
}

TEST_F(NcclCommunicatorTest, MissingPeerInGraphReplayEndsInDeadlineExceeded) {
  ExpectAllPassed(RunGroup(2, kShortTimeout, 60, MissingPeerInReplay), "missing peer in replay");
}

TEST_F(NcclCommunicatorTest, AllReduceLatency) {
  for (const int size : Sizes()) {
    ExpectAllPassed(RunGroup(size, std::chrono::seconds(20), 120, Latency),
                    "latency, size " + std::to_string(size));
  }
}

TEST(NcclCommunicatorArgs, RejectsAMalformedId) {
  // Checked before any CUDA call, so this runs (and keeps the parent CUDA-free) without a GPU.
  EXPECT_TRUE(absl::IsInvalidArgument(
      NcclCommunicator::Create("short", 0, 2, 0, std::chrono::seconds(1)).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      NcclCommunicator::Create(std::string(NCCL_UNIQUE_ID_BYTES, '\0'), 2, 2, 0,
                               std::chrono::seconds(1)).status()));
}

}  // namespace
}  // namespace mla
