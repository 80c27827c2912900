// shmring error model: expected outcomes are values, never exceptions.
#pragma once

#if !defined(__cplusplus) || __cplusplus < 202002L
#error "shmring's C++ headers need C++20 (-std=c++20 or later); from C or an older C++, include <shmring/shmring.h>"
#endif

#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "shmring/shmring.h"

namespace shmring {

// The numeric values are the C API's return codes, so converting between the
// two faces is free.
enum class Errc : int {
  ok = SHMRING_OK,
  would_block = SHMRING_EWOULDBLOCK,
  timed_out = SHMRING_ETIMEDOUT,
  peer_gone = SHMRING_EPEERGONE,
  busy = SHMRING_EBUSY,
  exists = SHMRING_EEXIST,
  not_found = SHMRING_ENOENT,
  permission_denied = SHMRING_EPERM,
  corrupt = SHMRING_ECORRUPT,
  version_mismatch = SHMRING_EVERSION,
  too_big = SHMRING_ETOOBIG,
  reset = SHMRING_ERESET,
  invalid_argument = SHMRING_EINVAL,
  no_space = SHMRING_ENOSPC,
  system_error = SHMRING_ESYSTEM,
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// Short static description of a code ("ring is empty or full", ...).
const char* to_string(Errc e) noexcept;

// The calling thread's last detailed message from a failed setup call
// (create, open, unlink), naming the ring and the cause.
const std::string& last_error_message() noexcept;

// A value or an Errc. Small on purpose: C++20 has no std::expected, and the
// public headers stay free of Boost so users need nothing but the library.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T v) : value_(std::move(v)), err_(Errc::ok) {}  // NOLINT: implicit by design
  Result(Errc e) : err_(e) {}                            // NOLINT: implicit by design

  bool ok() const noexcept { return err_ == Errc::ok; }
  explicit operator bool() const noexcept { return ok(); }
  Errc error() const noexcept { return err_; }

  // Precondition: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Errc err_;
};

}  // namespace shmring

template <>
struct std::is_error_code_enum<shmring::Errc> : std::true_type {};
