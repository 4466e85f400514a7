// The frozen-weight ranges of a backend (Backend::freeze_weights): disjoint [begin, end) ranges of
// float memory, sorted, each with the backend's payload (the CUDA backend: its bf16 copy). Lookups
// are a binary search, and callers test empty() first, so fp32 runs (nothing frozen) pay one branch.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "runtime/error.h"

namespace mira {

class FrozenRanges {
 public:
  struct Range {
    const float* begin;
    const float* end;
    void* copy;  // backend payload (nullptr for the CPU backend)
  };
  bool empty() const { return ranges_.empty(); }

  // The range holding the operand [p, p + n) (a slice of a frozen tensor), or nullptr when p lies
  // in none. An operand that starts inside a range must end inside it (InternalError otherwise).
  const Range* find(const float* p, int64_t n) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), p,
                               [](const float* x, const Range& r) { return less(x, r.begin); });
    if (it == ranges_.begin()) return nullptr;
    --it;
    if (!less(p, it->end)) return nullptr;
    MIRA_CHECK(!less(it->end, p + n), "an operand starts inside a frozen weight and extends beyond it");
    return &*it;
  }
  // Whether [p, p + n) overlaps any range.
  bool overlaps(const float* p, int64_t n) const {
    if (n <= 0) return false;
    auto it = std::lower_bound(ranges_.begin(), ranges_.end(), p + n,
                               [](const Range& r, const float* x) { return less(r.begin, x); });
    return it != ranges_.begin() && less(p, std::prev(it)->end);  // the last range starting before p + n
  }
  // Whether exactly [p, p + n) is already a range (freezing it again is a no-op).
  bool contains_exactly(const float* p, int64_t n) const {
    const Range* r = n > 0 ? find(p, n) : nullptr;
    return r && r->begin == p && r->end == p + n;
  }
  // Adds [p, p + n); it must not overlap an existing range.
  void insert(const float* p, int64_t n, void* copy) {
    MIRA_CHECK(!overlaps(p, n), "freeze_weights: the range overlaps a range frozen earlier");
    auto it = std::lower_bound(ranges_.begin(), ranges_.end(), p,
                               [](const Range& r, const float* x) { return less(r.begin, x); });
    ranges_.insert(it, Range{p, p + n, copy});
  }
  // Removes the ranges that start inside the block [b, e) (it is being released); returns them.
  std::vector<Range> remove_block(const void* b, const void* e) {
    std::vector<Range> out;
    auto inside = [&](const Range& r) {
      const void* x = r.begin;
      return !std::less<const void*>()(x, b) && std::less<const void*>()(x, e);
    };
    for (const Range& r : ranges_)
      if (inside(r)) out.push_back(r);
    ranges_.erase(std::remove_if(ranges_.begin(), ranges_.end(), inside), ranges_.end());
    return out;
  }
  const std::vector<Range>& all() const { return ranges_; }

 private:
  // A total order on pointers into different allocations (plain < is unspecified there).
  static bool less(const float* a, const float* b) { return std::less<const float*>()(a, b); }
  std::vector<Range> ranges_;
};

}  // namespace mira
