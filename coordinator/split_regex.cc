// SplitRegex: Oniguruma-to-RE2 pattern translation and the Isolated split (see split_regex.h).
#include "coordinator/split_regex.h"

#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "coordinator/utf8.h"
#include "re2/re2.h"

namespace mla::coordinator {
namespace {

constexpr std::string_view kSpaceLookahead = R"(\s+(?!\S))";
constexpr std::string_view kSpaceRun = R"(\s+)";
constexpr std::string_view kSpaceGroup = R"((?P<mla_space_run>\s+))";

// The body (for use inside [...]) of the Unicode set behind \s, \d or \w in either case; empty
// for other escapes.
std::string_view UnicodeSetBody(char escape) {
  switch (escape) {
    case 's':
    case 'S':
      return R"(\x{9}-\x{D}\x{85}\p{Z})";
    case 'd':
    case 'D':
      return R"(\p{Nd})";
    case 'w':
    case 'W':
      return R"(\p{L}\p{M}\p{Nd}\p{Pc})";
    default:
      return {};
  }
}

bool IsLookaround(std::string_view rest) {
  return rest.starts_with("(?=") || rest.starts_with("(?!") || rest.starts_with("(?<=") ||
         rest.starts_with("(?<!");
}

// Walks a pattern token by token: escapes, [...] classes (with a leading ']' literal and POSIX
// [:name:] inside) and everything else. `visit(token, in_class)` sees each token once.
template <typename Visit>
void Lex(std::string_view pattern, Visit visit) {
  bool in_class = false;
  size_t class_start = 0;  // position just after '[' or '[^'
  for (size_t i = 0; i < pattern.size();) {
    size_t n = 1;
    if (pattern[i] == '\\' && i + 1 < pattern.size()) {
      n = 2;
      while (i + n < pattern.size() && (static_cast<uint8_t>(pattern[i + n]) & 0xC0) == 0x80) ++n;
    } else if (in_class && pattern.substr(i).starts_with("[:")) {
      const size_t close = pattern.find(":]", i + 2);
      n = close == std::string_view::npos ? pattern.size() - i : close + 2 - i;
    }
    const std::string_view token = pattern.substr(i, n);
    const bool token_in_class = in_class;
    if (!in_class && token == "[") {
      in_class = true;
      class_start = i + 1;
      if (class_start < pattern.size() && pattern[class_start] == '^') ++class_start;
    } else if (in_class && token == "]" && i != class_start) {
      in_class = false;
    }
    visit(i, token, token_in_class);
    i += n;
  }
}

// Replaces \s \S \d \D \w \W by their Unicode sets.
absl::StatusOr<std::string> RewriteClassEscapes(std::string_view pattern) {
  std::string out;
  absl::Status status;
  Lex(pattern, [&](size_t, std::string_view token, bool in_class) {
    const std::string_view body =
        token.size() == 2 && token[0] == '\\' ? UnicodeSetBody(token[1]) : std::string_view();
    if (body.empty()) {
      out.append(token);
      return;
    }
    const bool negated = token[1] >= 'A' && token[1] <= 'Z';
    if (in_class && negated && status.ok()) {
      status = absl::InvalidArgumentError(
          absl::StrCat("pattern: ", std::string(token), " inside [...] has no RE2 equivalent"));
    }
    if (in_class) {
      out.append(body);
    } else {
      out += negated ? "[^" : "[";
      out.append(body);
      out += "]";
    }
  });
  if (!status.ok()) return status;
  return out;
}

}  // namespace

absl::StatusOr<Re2Pattern> TranslateOnigurumaPattern(std::string_view pattern) {
  // Cut at top-level '|' and find lookarounds.
  std::vector<std::string_view> alternatives;
  std::vector<bool> has_lookaround;
  size_t start = 0;
  int depth = 0;
  bool lookaround = false;
  Lex(pattern, [&](size_t i, std::string_view token, bool in_class) {
    if (in_class) return;
    if (token == "(") {
      ++depth;
      lookaround = lookaround || IsLookaround(pattern.substr(i));
    } else if (token == ")") {
      --depth;
    } else if (token == "|" && depth == 0) {
      alternatives.push_back(pattern.substr(start, i - start));
      has_lookaround.push_back(lookaround);
      start = i + 1;
      lookaround = false;
    }
  });
  alternatives.push_back(pattern.substr(start));
  has_lookaround.push_back(lookaround);

  Re2Pattern result;
  std::vector<std::string_view> kept;
  for (size_t k = 0; k < alternatives.size(); ++k) {
    if (alternatives[k] == kSpaceLookahead && !result.emulates_space) {
      const bool last = k + 1 == alternatives.size();
      if (!last && alternatives[k + 1] != kSpaceRun) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pattern: \\s+(?!\\S) must be the last alternative or be followed by \\s+ to be "
            "emulated on RE2; got ",
            std::string(pattern)));
      }
      result.emulates_space = true;
      result.space_fallback = !last;
      kept.push_back(kSpaceGroup);
      if (!last) ++k;  // the \s+ fallback is part of the emulation
      continue;
    }
    if (has_lookaround[k]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pattern: lookaround other than the alternative \\s+(?!\\S) is not supported (RE2 has "
          "none): ",
          std::string(alternatives[k])));
    }
    kept.push_back(alternatives[k]);
  }
  std::string joined;
  for (size_t k = 0; k < kept.size(); ++k) {
    if (k > 0) joined += '|';
    joined.append(kept[k]);
  }
  absl::StatusOr<std::string> rewritten = RewriteClassEscapes(joined);
  if (!rewritten.ok()) return rewritten.status();
  result.pattern = *std::move(rewritten);
  return result;
}

SplitRegex::SplitRegex(std::string pattern, Re2Pattern translated, std::unique_ptr<re2::RE2> re)
    : pattern_(std::move(pattern)), translated_(std::move(translated)), re_(std::move(re)) {
  if (translated_.emulates_space) {
    space_group_ = re_->NamedCapturingGroups().at("mla_space_run");
  }
}

SplitRegex::SplitRegex(SplitRegex&&) noexcept = default;
SplitRegex& SplitRegex::operator=(SplitRegex&&) noexcept = default;
SplitRegex::~SplitRegex() = default;

namespace {

absl::StatusOr<std::unique_ptr<re2::RE2>> Compile(std::string_view original,
                                                  const std::string& re2_pattern) {
  re2::RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_unique<re2::RE2>(re2_pattern, options);
  if (!re->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pattern ", std::string(original), ": RE2 cannot compile it: ", re->error()));
  }
  return re;
}

}  // namespace

absl::StatusOr<SplitRegex> SplitRegex::Create(std::string_view pattern) {
  absl::StatusOr<Re2Pattern> translated = TranslateOnigurumaPattern(pattern);
  if (!translated.ok()) return translated.status();
  absl::StatusOr<std::unique_ptr<re2::RE2>> re = Compile(pattern, translated->pattern);
  if (!re.ok()) return re.status();
  return SplitRegex(std::string(pattern), *std::move(translated), *std::move(re));
}

absl::StatusOr<SplitRegex> SplitRegex::CreateLiteral(std::string_view text) {
  Re2Pattern translated;
  translated.pattern = re2::RE2::QuoteMeta(re2::StringPiece(text.data(), text.size()));
  absl::StatusOr<std::unique_ptr<re2::RE2>> re = Compile(text, translated.pattern);
  if (!re.ok()) return re.status();
  return SplitRegex(std::string(text), std::move(translated), *std::move(re));
}

void SplitRegex::Split(std::string_view text, std::vector<std::string_view>* out) const {
  absl::InlinedVector<re2::StringPiece, 4> groups(space_group_ + 1);
  const re2::StringPiece subject(text.data(), text.size());
  size_t pos = 0;      // where the next search starts
  size_t emitted = 0;  // text before this is in `out`
  while (pos < text.size() && re_->Match(subject, pos, text.size(), re2::RE2::UNANCHORED,
                                         groups.data(), static_cast<int>(groups.size()))) {
    const size_t begin = groups[0].data() - text.data();
    size_t end = begin + groups[0].size();
    if (space_group_ > 0 && groups[space_group_].data() != nullptr && end < text.size()) {
      // \s+(?!\S): the run stops before a non-space character, so give back its last one.
      size_t last = end - 1;
      while (last > begin && (static_cast<uint8_t>(text[last]) & 0xC0) == 0x80) --last;
      if (last > begin) {
        end = last;
      } else if (!translated_.space_fallback) {
        pos = end;  // a lone space before \S: no alternative matches here
        continue;
      }
    }
    if (end == begin) {  // an empty match: step over one character
      if (begin == text.size()) break;
      pos = begin + ScanUtf8(text, begin).length;
      continue;
    }
    if (begin > emitted) out->push_back(text.substr(emitted, begin - emitted));
    out->push_back(text.substr(begin, end - begin));
    emitted = pos = end;
  }
  if (emitted < text.size()) out->push_back(text.substr(emitted));
}

}  // namespace mla::coordinator
