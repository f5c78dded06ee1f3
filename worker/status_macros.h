// MLA_RETURN_IF_ERROR / MLA_ASSIGN_OR_RETURN: early return of a failed absl::Status(Or).
// Header-only.
#ifndef MLASERVE_WORKER_STATUS_MACROS_H_
#define MLASERVE_WORKER_STATUS_MACROS_H_

#include <utility>

#define MLA_STATUS_CONCAT_INNER(a, b) a##b
#define MLA_STATUS_CONCAT(a, b) MLA_STATUS_CONCAT_INNER(a, b)

#define MLA_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    if (auto _mla_st = (expr); !_mla_st.ok()) {    \
      return _mla_st;                              \
    }                                              \
  } while (0)

// lhs may be a declaration (`auto x`) or an existing variable.
#define MLA_ASSIGN_OR_RETURN(lhs, expr) \
  MLA_ASSIGN_OR_RETURN_IMPL(MLA_STATUS_CONCAT(_mla_or_, __LINE__), lhs, expr)
#define MLA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(*tmp)

#endif  // MLASERVE_WORKER_STATUS_MACROS_H_
