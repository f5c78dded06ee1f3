# The coordinator's serving half (included from coordinator/CMakeLists.txt).
#
# mla_coordinator_core also gets the layer split (pure, absl only). mla_coordinator_server: the
# gRPC services (client API, worker control, health, reflection), the worker hub and the step
# loop, on top of mla_coordinator_core (which stays free of gRPC). mla-coordinator: the binary,
# at ${CMAKE_BINARY_DIR}/coordinator/mla-coordinator.
target_sources(mla_coordinator_core PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/layer_ranges.cc)

if(TARGET mla_protos)
  find_package(gRPC CONFIG REQUIRED)
  add_library(mla_coordinator_server STATIC
              coordinator_server.cc engine.cc generate_reactor.cc inference_service.cc
              model_card.cc rendezvous_store.cc request_validation.cc status.cc step_wire.cc worker_connection.cc
              worker_hub.cc worker_hub_monitor.cc worker_hub_status.cc)
  target_link_libraries(mla_coordinator_server PUBLIC
                        mla_coordinator_core mla_protos mla_security gRPC::grpc++
                        gRPC::grpc++_reflection
                        absl::synchronization absl::time absl::random_random absl::str_format
                        absl::flat_hash_map nlohmann_json::nlohmann_json Threads::Threads)

  add_executable(mla-coordinator coordinator_main.cc)
  target_link_libraries(mla-coordinator PRIVATE mla_coordinator_server absl::flags
                        absl::flags_parse)
  include(${CMAKE_CURRENT_SOURCE_DIR}/http.cmake)
endif()
