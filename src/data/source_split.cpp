// The train/test share rule every dataset source uses (see source.h).
#include "data/source.h"

namespace mira {

int64_t source_train_count(int64_t n, double train_fraction) {
  if (n < 2) return n;
  int64_t nt = static_cast<int64_t>(train_fraction * static_cast<double>(n));
  if (nt < 1) nt = 1;
  if (nt > n - 1) nt = n - 1;
  return nt;
}

}  // namespace mira
