// The built-in training text for synthetic tokenizers (tools/bpe_trainer.h): about 6 KB written
// for this project, in English, German, French, Chinese, Japanese and Russian, with emoji,
// numbers, whitespace runs and a little C++ and Python, so that the merges a small vocabulary
// learns cover every branch of DeepSeek-V3's pre-tokenizer. Constant data; any thread.
#ifndef MLASERVE_TOOLS_BPE_CORPUS_H_
#define MLASERVE_TOOLS_BPE_CORPUS_H_

#include <string_view>

namespace mla::tools {

std::string_view BuiltinBpeCorpus();

}  // namespace mla::tools

#endif  // MLASERVE_TOOLS_BPE_CORPUS_H_
