// Provenance: code version, compiler, library versions, ranks, hosts, threads, devices. Printed in
// the start-up banner and by --version, and stored in every checkpoint and metrics header.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace mira {

struct MpiEnv;
struct ThreadPlan;

std::string provenance_code_version();  // "0.1.0 (git abc123def456)"
std::string provenance_compiler();      // "GCC 12.2.0"

// Static facts (no MPI needed): code, compiler, MPI library, HDF5, BLAS, CUDA, cuBLAS, NCCL.
std::vector<std::pair<std::string, std::string>> provenance_libraries();
// Run facts: ranks, hosts, threads, devices, plus the static ones; one "key: value" per line.
std::vector<std::pair<std::string, std::string>> provenance_run(const MpiEnv& env, const ThreadPlan& threads);
std::string provenance_text(const std::vector<std::pair<std::string, std::string>>& items);

}  // namespace mira
