// MIRA_CHECK_HDF5(call): HDF5 calls return a negative herr_t/hid_t/hssize_t or enum value on
// failure (0 for the few that return a size_t); throws InternalError naming the statement, file:line, rank and host
// (HDF5's own error stack is printed by HDF5 to stderr unless silenced with H5Eset_auto2).
#pragma once
#include <hdf5.h>

#include <type_traits>

#include "runtime/error.h"

#define MIRA_CHECK_HDF5(call)                                                                 \
  ([&]() {                                                                                    \
    auto mira_h5_rc_ = (call);                                                                \
    bool mira_h5_failed_;                                                                     \
    if constexpr (std::is_enum_v<decltype(mira_h5_rc_)>)                                      \
      mira_h5_failed_ = static_cast<long long>(mira_h5_rc_) < 0;                              \
    else if constexpr (std::is_signed_v<decltype(mira_h5_rc_)>)                               \
      mira_h5_failed_ = mira_h5_rc_ < 0;                                                      \
    else                                                                                      \
      mira_h5_failed_ = mira_h5_rc_ == 0;                                                     \
    if (mira_h5_failed_)                                                                      \
      ::mira::throw_check_failure("HDF5", #call, "returned " + std::to_string((long long)mira_h5_rc_), \
                                  __FILE__, __LINE__);                                        \
    return mira_h5_rc_;                                                                       \
  }())
