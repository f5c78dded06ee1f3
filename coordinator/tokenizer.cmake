# mla_tokenizer: text <-> token ids for Hugging Face byte-level BPE tokenizer.json files
# (DeepSeek-V3's kind), streaming decode and DeepSeek-V3's chat format. Needs RE2 (Debian's
# libre2-dev, found through pkg-config), nlohmann_json and absl. Independent of
# mla_coordinator_core in both directions; the server links both. Included from CMakeLists.txt.
find_package(PkgConfig REQUIRED)
pkg_check_modules(MLA_RE2 REQUIRED IMPORTED_TARGET re2)

add_library(mla_tokenizer STATIC
            ${CMAKE_CURRENT_LIST_DIR}/utf8.cc
            ${CMAKE_CURRENT_LIST_DIR}/byte_level.cc
            ${CMAKE_CURRENT_LIST_DIR}/split_regex.cc
            ${CMAKE_CURRENT_LIST_DIR}/pretokenizer.cc
            ${CMAKE_CURRENT_LIST_DIR}/bpe_model.cc
            ${CMAKE_CURRENT_LIST_DIR}/added_tokens.cc
            ${CMAKE_CURRENT_LIST_DIR}/tokenizer.cc
            ${CMAKE_CURRENT_LIST_DIR}/stream_decoder.cc
            ${CMAKE_CURRENT_LIST_DIR}/chat_template.cc)
target_link_libraries(mla_tokenizer PUBLIC PkgConfig::MLA_RE2 nlohmann_json::nlohmann_json
                      absl::status absl::statusor absl::strings absl::flat_hash_map
                      absl::inlined_vector)
