//===- Status.h - Error values for MLIR-free halo code -----------*- C++ -*-===//
//
// The runtime and the frontend's config reader never link LLVM, so they cannot
// use llvm::Error. Status carries one human-readable message that names the
// cause (file, key, call) and, where useful, a hint; tools print it and exit 1.
//
//===----------------------------------------------------------------------===//
#ifndef HALO_RUNTIME_STATUS_H
#define HALO_RUNTIME_STATUS_H

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace halo {

class [[nodiscard]] Status {
public:
  Status() = default;
  static Status success() { return Status(); }
  static Status error(std::string message) {
    Status s;
    s.message_ = std::move(message);
    return s;
  }
  bool ok() const { return !message_.has_value(); }
  /// The error text; empty for success.
  const std::string &message() const {
    static const std::string empty;
    return message_ ? *message_ : empty;
  }

private:
  std::optional<std::string> message_;
};

template <typename T> class [[nodiscard]] StatusOr {
public:
  StatusOr(T value) : v_(std::move(value)) {}
  StatusOr(Status status) : v_(std::move(status)) {}
  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::success() : std::get<Status>(v_); }
  T &value() { return std::get<T>(v_); }
  const T &value() const { return std::get<T>(v_); }
  T &operator*() { return value(); }
  T *operator->() { return &value(); }

private:
  std::variant<T, Status> v_;
};

} // namespace halo

#define HALO_RETURN_IF_ERROR(expr)                                             \
  do {                                                                         \
    ::halo::Status halo_status_ = (expr);                                      \
    if (!halo_status_.ok())                                                    \
      return halo_status_;                                                     \
  } while (0)

#endif // HALO_RUNTIME_STATUS_H
