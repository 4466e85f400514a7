// MIRA eq. (8) and FedIT on device-resident adapters (aggregate_device.h): host code that builds the
// kernels' tables (neighbour pointers, weights, offsets), uploads them in one copy and launches the
// kernels of kernels/cuda/aggregate.h on the backend's stream.
#ifdef MIRA_HAVE_CUDA
#include "fed/aggregate_device.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "kernels/cuda/aggregate.h"
#include "runtime/check_cuda.h"
#include "runtime/error.h"

namespace mira {

namespace {

void check_op(const CudaStatus& st, const char* what) {
  if (!st.ok())
    throw_check_failure("CUDA", what, std::string(cudaGetErrorString(st.cuda)) + " (" + st.step + ")", __FILE__,
                        __LINE__);
}

// Packs host arrays into one host image, 8-byte aligned sections, and uploads it into work.tables.
class TableImage {
 public:
  explicit TableImage(DeviceAggregateWork& w) : w_(w) { w_.host_tables.clear(); }
  template <typename T>
  size_t add(const std::vector<T>& v) {
    const size_t off = (w_.host_tables.size() + 7) / 8 * 8;
    w_.host_tables.resize(off + v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(w_.host_tables.data() + off, v.data(), v.size() * sizeof(T));
    return off;
  }
  // Device base address of the uploaded image (queued on `s`; the host image stays in `w` until
  // the next call, and pageable copies are staged before cudaMemcpyAsync returns).
  unsigned char* upload(cudaStream_t s) {
    const size_t bytes = std::max<size_t>(w_.host_tables.size(), 8);
    auto* dev = reinterpret_cast<unsigned char*>(w_.tables.reserve((bytes + 3) / 4));
    if (!w_.host_tables.empty())
      MIRA_CHECK_CUDA(cudaMemcpyAsync(dev, w_.host_tables.data(), w_.host_tables.size(), cudaMemcpyHostToDevice, s));
    return dev;
  }

 private:
  DeviceAggregateWork& w_;
};

}  // namespace

void mira_step_device(AdapterExchange& ex, const Graph& g, const std::vector<int>& sampled, NeighbourMode mode,
                      double eta_lambda, const AdapterLookup& owned, cudaStream_t stream, DeviceAggregateWork& work) {
  const size_t P = ex.adapter_floats();
  std::vector<char> is_sampled;
  const std::vector<int> targets = mira_exchange(ex, g, sampled, mode, owned, &is_sampled);
  if (targets.empty() || P == 0) return;
  MIRA_CHECK(targets.size() <= 65535, "eq. (8) on the device: more than 65535 sampled clients on one rank");
  float* staged = work.staged.reserve(targets.size() * P);
  std::vector<const float*> self, nbr;
  std::vector<float*> out;
  std::vector<double> weight;
  std::vector<int> first{0};
  for (size_t t = 0; t < targets.size(); ++t) {
    const int k = targets[t];
    self.push_back(owned(k));
    MIRA_CHECK(self.back() != nullptr, "no buffer for owned client " + std::to_string(k));
    out.push_back(staged + t * P);
    for (int l : mira_neighbours(g, k, is_sampled, mode)) {
      const float* p = ex.neighbour(l);
      MIRA_CHECK(p != nullptr, "adapter of neighbour " + std::to_string(l) + " of client " + std::to_string(k) + " missing");
      nbr.push_back(p);
      weight.push_back(g.weight(k, l));
    }
    first.push_back(static_cast<int>(nbr.size()));
  }
  TableImage img(work);
  const size_t o_out = img.add(out), o_self = img.add(self), o_first = img.add(first), o_nbr = img.add(nbr),
               o_w = img.add(weight);
  unsigned char* d = img.upload(stream);
  check_op(cuda_mira_update(stream, static_cast<int>(targets.size()), reinterpret_cast<float* const*>(d + o_out),
                            reinterpret_cast<const float* const*>(d + o_self), reinterpret_cast<const int*>(d + o_first),
                            reinterpret_cast<const float* const*>(d + o_nbr), reinterpret_cast<const double*>(d + o_w),
                            P, eta_lambda),
           "cuda_mira_update");
  // Every target computed from the pre-update states: now overwrite them (stream order).
  for (size_t t = 0; t < targets.size(); ++t)
    MIRA_CHECK_CUDA(cudaMemcpyAsync(owned(targets[t]), staged + t * P, P * sizeof(float), cudaMemcpyDeviceToDevice,
                                    stream));
}

bool fedit_step_device(AdapterExchange& ex, const std::vector<int>& sampled, const std::vector<int64_t>& data_size,
                       const AdapterLookup& owned, float* global, bool reproducible, cudaStream_t stream,
                       DeviceAggregateWork& work) {
  MIRA_CHECK(static_cast<int>(data_size.size()) == ex.clients(), "data_size needs K entries");
  const size_t P = ex.adapter_floats();
  std::vector<int> ids = sampled;
  std::sort(ids.begin(), ids.end());  // client-id order
  const int n = static_cast<int>(ids.size());
  // The weights exactly as fedit_average computes them.
  double total = 0.0;
  for (int j = 0; j < n; ++j) {
    const double s = static_cast<double>(data_size[ids[j]]);
    MIRA_CHECK(s >= 0.0, "client data size " + std::to_string(s));
    total += s;
  }
  MIRA_CHECK(n >= 1 && total > 0.0, "FedIT needs clients with data (n=" + std::to_string(n) + ")");
  std::vector<double> coef(n);
  for (int j = 0; j < n; ++j) coef[j] = static_cast<double>(data_size[ids[j]]) / total;

  auto* nccl = dynamic_cast<NcclAdapterExchange*>(&ex);
  std::vector<const float*> in;
  std::vector<double> w;
  if (!reproducible && nccl) {
    for (int j = 0; j < n; ++j)  // this rank's sampled clients, client order
      if (ex.owns(ids[j])) in.push_back(owned(ids[j])), w.push_back(coef[j]);
  } else {
    float* all = work.gathered.reserve(static_cast<size_t>(n) * P);
    ex.gather(ids, owned, all);
    for (int j = 0; j < n; ++j) in.push_back(all + static_cast<size_t>(j) * P);
    w = coef;
  }
  TableImage img(work);
  const size_t o_in = img.add(in), o_w = img.add(w);
  unsigned char* d = img.upload(stream);
  check_op(cuda_weighted_sum(stream, global, reinterpret_cast<const float* const*>(d + o_in),
                             reinterpret_cast<const double*>(d + o_w), static_cast<int>(in.size()), P),
           "cuda_weighted_sum");
  if (!reproducible && nccl) {
    nccl->allreduce_sum(global, P);
    return true;
  }
  return false;
}

}  // namespace mira
#endif  // MIRA_HAVE_CUDA
