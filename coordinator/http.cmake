# The coordinator's HTTP side (included from serving.cmake): the OpenAI-compatible API, /metrics,
# /health and /ready on cpp-httplib (Debian's libcpp-httplib-dev, found through pkg-config), the
# metrics registry, and the tokenizer that gives the gRPC API text. Adds to mla_coordinator_server.
find_package(PkgConfig REQUIRED)
pkg_check_modules(MLA_HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
target_sources(mla_coordinator_server PRIVATE
               ${CMAKE_CURRENT_LIST_DIR}/coordinator_http.cc
               ${CMAKE_CURRENT_LIST_DIR}/http_server.cc
               ${CMAKE_CURRENT_LIST_DIR}/metrics.cc
               ${CMAKE_CURRENT_LIST_DIR}/openai_api.cc
               ${CMAKE_CURRENT_LIST_DIR}/request_trace.cc
               ${CMAKE_CURRENT_LIST_DIR}/text_generation.cc)
target_link_libraries(mla_coordinator_server PUBLIC mla_tokenizer PkgConfig::MLA_HTTPLIB)

# mla-client (tools/mla_client_main.cc): the command-line gRPC client, at build/tools/mla-client.
add_executable(mla-client ${CMAKE_SOURCE_DIR}/tools/mla_client_main.cc)
target_link_libraries(mla-client PRIVATE mla_protos gRPC::grpc++ absl::flags absl::flags_parse
                      absl::strings absl::time)
set_target_properties(mla-client PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tools)
