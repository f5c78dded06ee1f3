// GlooCommunicator over real TCP on loopback, one thread per rank, rendezvous through an
// in-process store: each collective against its definition, empty calls, and a peer that never
// joins the collective (DeadlineExceeded within the timeout, never a hang).
#include "worker/gloo_communicator.h"

#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "gloo/rendezvous/hash_store.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

// Runs fn(rank, communicator) on `size` threads of one fresh group.
void OnGroup(int size, const std::function<void(int, Communicator&)>& fn,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  gloo::rendezvous::HashStore store;
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    threads.emplace_back([&, r] {
      auto comm = GlooCommunicator::Create(store, "g", r, size, {.timeout = timeout});
      ASSERT_TRUE(comm.ok()) << comm.status();
      EXPECT_EQ((*comm)->rank(), r);
      EXPECT_EQ((*comm)->size(), size);
      fn(r, **comm);
    });
  }
  for (auto& t : threads) t.join();
}

TEST(GlooCommunicator, CollectivesMatchTheirDefinitions) {
  for (int size : {2, 3, 4}) {
    OnGroup(size, [size](int r, Communicator& c) {
      std::vector<float> f = {1.0f * r, 2.0f, -0.5f * r};
      ASSERT_TRUE(c.AllReduceSum(f.data(), 3).ok());
      const float ranks = size * (size - 1) / 2.0f;
      EXPECT_EQ(f, (std::vector<float>{ranks, 2.0f * size, -0.5f * ranks}));

      std::vector<double> d(1000, r + 0.25);
      ASSERT_TRUE(c.AllReduceSum(d.data(), 1000).ok());
      EXPECT_EQ(d[999], ranks + 0.25 * size);

      std::vector<float> in = {10.0f * r, 10.0f * r + 1}, out(2 * size, -1.0f);
      ASSERT_TRUE(c.AllGather(in.data(), 2, out.data()).ok());
      for (int q = 0; q < size; ++q) {
        EXPECT_EQ(out[2 * q], 10.0f * q);
        EXPECT_EQ(out[2 * q + 1], 10.0f * q + 1);
      }

      std::vector<float> b = {static_cast<float>(r), 7.0f};
      ASSERT_TRUE(c.Broadcast(b.data(), 2, size - 1).ok());
      EXPECT_EQ(b[0], size - 1.0f);

      // A ring of point-to-point messages, in order.
      std::vector<float> msg = {static_cast<float>(r)}, got(1, -1.0f);
      if (r % 2 == 0) {
        ASSERT_TRUE(c.Send(msg.data(), 1, (r + 1) % size).ok());
        ASSERT_TRUE(c.Recv(got.data(), 1, (r + size - 1) % size).ok());
      } else {
        ASSERT_TRUE(c.Recv(got.data(), 1, (r + size - 1) % size).ok());
        ASSERT_TRUE(c.Send(msg.data(), 1, (r + 1) % size).ok());
      }
      EXPECT_EQ(got[0], static_cast<float>((r + size - 1) % size));

      EXPECT_TRUE(c.AllReduceSum(f.data(), 0).ok());
      EXPECT_TRUE(c.AllGather(in.data(), 0, out.data()).ok());
      EXPECT_TRUE(c.Barrier().ok());
    });
  }
}

TEST(GlooCommunicator, MissingPeerTimesOutInsteadOfHanging) {
  const auto start = std::chrono::steady_clock::now();
  OnGroup(
      2,
      [](int r, Communicator& c) {
        if (r == 1) {  // stays connected but never joins the all-reduce
          std::this_thread::sleep_for(std::chrono::milliseconds(2000));
          return;
        }
        std::vector<float> f(4, 1.0f);
        absl::Status st = c.AllReduceSum(f.data(), 4);
        EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
        std::printf("rank 0 got: %s\n", st.ToString().c_str());
      },
      std::chrono::milliseconds(500));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 10.0);
}

}  // namespace
}  // namespace mla
