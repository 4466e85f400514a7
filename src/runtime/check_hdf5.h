// MIRA_CHECK_HDF5(call): HDF5 calls return a negative herr_t/hid_t on failure; throws
// InternalError naming the statement, file:line, rank and host (HDF5's own error stack is printed
// by HDF5 to stderr unless silenced with H5Eset_auto2).
#pragma once
#include <hdf5.h>

#include "runtime/error.h"

#define MIRA_CHECK_HDF5(call)                                                                 \
  ([&]() {                                                                                    \
    auto mira_h5_rc_ = (call);                                                                \
    if (mira_h5_rc_ < 0)                                                                      \
      ::mira::throw_check_failure("HDF5", #call, "returned " + std::to_string((long long)mira_h5_rc_), \
                                  __FILE__, __LINE__);                                        \
    return mira_h5_rc_;                                                                       \
  }())
