// The coordinator's RendezvousStore through the worker's RendezvousClient over a real gRPC
// server on loopback: keys set by one rank are read by another, a get waits for a key set later,
// and an abandoned formation prefix ends every wait under it at once (ABORTED with the reason,
// thrown as the store interface's exception) and refuses later sets, while other prefixes work
// on. Abandon also drops the prefix's keys.
#include "coordinator/rendezvous_store.h"

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gloo/common/error.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "worker/service/rendezvous_client.h"

namespace mla {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<char> Bytes(const std::string& s) { return std::vector<char>(s.begin(), s.end()); }

class RendezvousStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&store_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override { server_->Shutdown(); }

  std::unique_ptr<worker_service::RendezvousClient> Client(std::chrono::milliseconds timeout) {
    return std::make_unique<worker_service::RendezvousClient>(
        absl::StrCat("127.0.0.1:", port_), timeout);
  }

  coordinator::RendezvousStore store_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(RendezvousStoreTest, KeysMeetAcrossClientsAndAGetWaitsForALaterSet) {
  auto a = Client(std::chrono::seconds(10));
  auto b = Client(std::chrono::seconds(10));
  a->set("formation1/tp0/nccl_id", Bytes("id-0"));
  EXPECT_EQ(b->get("formation1/tp0/nccl_id"), Bytes("id-0"));
  std::thread late([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    a->set("formation1/pp0/0/nccl_id", Bytes("id-1"));
  });
  EXPECT_EQ(b->get("formation1/pp0/0/nccl_id"), Bytes("id-1"));
  late.join();
}

TEST_F(RendezvousStoreTest, AbandoningAFormationEndsItsWaitsAtOnce) {
  auto setter = Client(std::chrono::seconds(30));
  auto waiter = Client(std::chrono::seconds(30));  // would wait 30 s without the abandonment
  setter->set("formation1/tp0/nccl_id", Bytes("early"));
  std::string error;
  Clock::time_point ended;
  std::thread waiting([&] {
    try {
      waiter->get("formation1/tp1/nccl_id");  // never set: its group lost a rank
    } catch (const std::exception& e) {
      error = e.what();
    }
    ended = Clock::now();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const Clock::time_point abandoned = Clock::now();
  store_.Abandon("formation1/", "rank 3 failed: the worker closed the stream");
  waiting.join();
  EXPECT_LT(ended - abandoned, std::chrono::seconds(2)) << "the wait did not end at once";
  EXPECT_NE(error.find("abandoned"), std::string::npos) << error;
  EXPECT_NE(error.find("rank 3 failed"), std::string::npos) << error;

  // The prefix's keys are gone, later sets under it are refused, other prefixes work.
  EXPECT_THROW(waiter->get("formation1/tp0/nccl_id"), gloo::IoException);
  EXPECT_THROW(setter->set("formation1/tp1/nccl_id", Bytes("late")), gloo::IoException);
  setter->set("formation2/tp0/nccl_id", Bytes("next"));
  EXPECT_EQ(waiter->get("formation2/tp0/nccl_id"), Bytes("next"));
}

}  // namespace
}  // namespace mla
