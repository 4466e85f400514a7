// The CPU emulator behind tests/emu (docs/cuda.md, "The CUDA backend on a CPU emulator"):
//  1. the execution engine of translated kernels (cuda_emu.h): each block's threads are fibers
//     (user-level threads, one stack each) on the calling OS thread; a fiber runs until it reaches
//     __syncthreads or a warp-collective op (a shuffle, __syncwarp, mma.sync, ldmatrix:
//     warp_exchange), then the next runnable fiber of the block runs. Blocks run one after the
//     other. Misuse that hangs or is undefined on a GPU is reported as a launch failure naming the
//     launch site: a barrier some threads never reach (exited or waiting elsewhere), a shuffle with
//     a partial mask or in a partial warp, lanes of one warp at different collective ops (a shuffle
//     here, an mma.sync there), misaligned ldmatrix / cp.async addresses (cuda_emu.h), launch limits
//     (block size, grid y/z, dynamic shared memory above 48 KB without cudaFuncSetAttribute, above
//     sm_90's 227 KB).
//     Shared memory (dynamic and static) is NaN-filled (0xFF bytes) per block, so reading it before
//     writing shows up in the results. MIRA_EMU_ORDER=reverse runs the fibers of each phase (and the
//     blocks) in reverse order: results that depend on the order of unsynchronised threads change.
//  2. host shims of the CUDA runtime (device memory = host heap blocks, tracked, so copies, memsets
//     and cuBLAS operands are checked to lie inside device allocations and host pointers where host
//     memory is expected; streams synchronous) and of cuBLAS (column-major GEMMs with double
//     accumulation, the argument rules of the cuBLAS documentation, TF32 rounding when a handle's
//     math mode allows it).
// Built with -fsanitize=thread (MIRA_EMU_SANITIZE=thread) this file stays uninstrumented and tells
// ThreadSanitizer about fibers and barriers, so races between the threads of a block are reported.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda_emu.h"

// MIRA_EMU_TSAN: set by tests/emu/CMakeLists.txt, since this file is compiled without -fsanitize=thread.
#if defined(__SANITIZE_THREAD__) || defined(MIRA_EMU_TSAN)
#define EMU_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif
#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#include <sanitizer/common_interface_defs.h>
#endif
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace emu {

const uint3* g_thread_idx = nullptr;
uint3 g_block_idx;
dim3 g_block_dim, g_grid_dim;

namespace {

constexpr size_t kSharedStatic = 48 * 1024;      // default limit per block (static + dynamic)
constexpr size_t kSharedOptIn = 227 * 1024;      // sm_90 opt-in maximum per block
constexpr size_t kExchangeBytes = 128;           // largest warp_exchange payload per lane
#if defined(EMU_ASAN) || defined(EMU_TSAN)
constexpr size_t kStack = 1024 * 1024;
#else
constexpr size_t kStack = 128 * 1024;
#endif

cudaError_t g_last_error = cudaSuccess;

// ---- context switching -----------------------------------------------------------------------------
#if defined(__x86_64__)
// mira_emu_switch(save, to): saves the callee-saved registers, MXCSR and the x87 control word on the
// current stack, stores the stack pointer in *save and resumes the context saved at `to`.
extern "C" void mira_emu_switch(void** save, void* to);
asm(R"(
.text
.globl mira_emu_switch
.type mira_emu_switch,@function
mira_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size mira_emu_switch,.-mira_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");
#endif

struct Fiber {
  char* stack = nullptr;  // kStack bytes above a guard page
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
  uint3 tid{0, 0, 0};
  unsigned linear = 0;
  enum State { RUN, BARRIER, WARP, DONE, FAILED } state = RUN;
  uint64_t gen = 0;
  bool fresh = true;  // must (re)start at fiber_main
#if defined(EMU_TSAN)
  void* tsan = nullptr;
#endif
#if defined(EMU_ASAN)
  void* fake = nullptr;
#endif
};

struct Engine {
  std::vector<std::unique_ptr<Fiber>> fibers;  // stacks (mmap) live until exit
#if defined(__x86_64__)
  void* sched_sp = nullptr;
#else
  ucontext_t sched_uc;
#endif
#if defined(EMU_TSAN)
  void* sched_tsan = nullptr;
  char block_obj, end_obj;  // scheduler -> fibers at block start; fibers -> scheduler at grid end
  char bar_obj[2];
  std::vector<std::array<char, 2>> warp_obj;
#endif
#if defined(EMU_ASAN)
  void* sched_fake = nullptr;
  const void* main_bottom = nullptr;
  size_t main_size = 0;
#endif
  bool running = false;
  Fiber* cur = nullptr;
  unsigned nt = 0, done = 0;
  uint64_t bar_gen = 0;
  unsigned bar_arrived = 0;
  std::vector<uint64_t> warp_gen;
  std::vector<unsigned> warp_arrived;
  std::vector<uint64_t> xchg;  // (warps, 2, 32)
  std::vector<unsigned char> wx;  // (warps, 2, 32, kExchangeBytes): warp_exchange payloads
  std::vector<const char*> warp_what;  // the collective op the current generation's first lane reached
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  const LaunchConfig* cfg = nullptr;
  unsigned char* dyn = nullptr;     // this block's dynamic shared memory
  unsigned char* arena = nullptr;   // this block's static __shared__ variables (kSharedStatic bytes)
  std::vector<std::pair<const void*, size_t>> statics;  // key -> offset in arena
  size_t static_bytes = 0;
  std::vector<void*> deferred;  // TSan builds: shared memory freed after the grid (see run_block)
  std::string failure;
  bool reverse = false;
  std::map<const void*, int> max_dyn_smem;  // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel
};
Engine E;

void fiber_main();

void init_fiber(Fiber* f) {
  f->fresh = false;
#if defined(__x86_64__)
  // Initial frame popped by mira_emu_switch: mxcsr/fpu word, r15..rbp, return address = fiber_main,
  // then a zero "return address" for fiber_main so that it starts with the ABI's stack alignment.
  auto* top = reinterpret_cast<uint64_t*>(f->stack + kStack);
  top -= 2;  // 16-byte aligned; top[1] = 0 (fake return address of fiber_main), top[0] unused
  uint64_t* sp = top + 1;
  *sp = 0;
  *--sp = reinterpret_cast<uint64_t>(&fiber_main);
  for (int r = 0; r < 6; ++r) *--sp = 0;
  *--sp = 0x1F80 | (uint64_t(0x037F) << 32);  // default MXCSR, x87 control word
  f->sp = sp;
#else
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = f->stack;
  f->uc.uc_stack.ss_size = kStack;
  f->uc.uc_link = nullptr;
  makecontext(&f->uc, &fiber_main, 0);
#endif
}

std::unique_ptr<Fiber> new_fiber() {
  auto f = std::make_unique<Fiber>();
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  void* m = mmap(nullptr, kStack + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) {
    std::fprintf(stderr, "cuda emulator: cannot map a fiber stack\n");
    std::abort();
  }
  mprotect(m, page, PROT_NONE);  // guard page: a stack overflow faults instead of corrupting memory
  f->stack = static_cast<char*>(m) + page;
#if defined(EMU_TSAN)
  f->tsan = __tsan_create_fiber(0);
#endif
  return f;
}

// Scheduler -> fiber f, until f yields back.
void resume(Fiber* f) {
  E.cur = f;
  g_thread_idx = &f->tid;
  if (f->fresh) init_fiber(f);
#if defined(EMU_TSAN)
  __tsan_switch_to_fiber(f->tsan, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(EMU_ASAN)
  __sanitizer_start_switch_fiber(&E.sched_fake, f->stack, kStack);
#endif
#if defined(__x86_64__)
  mira_emu_switch(&E.sched_sp, f->sp);
#else
  swapcontext(&E.sched_uc, &f->uc);
#endif
#if defined(EMU_ASAN)
  __sanitizer_finish_switch_fiber(E.sched_fake, nullptr, nullptr);
#endif
}

// Fiber -> scheduler.
void yield() {
  Fiber* f = E.cur;
#if defined(EMU_TSAN)
  __tsan_switch_to_fiber(E.sched_tsan, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(EMU_ASAN)
  __sanitizer_start_switch_fiber(&f->fake, E.main_bottom, E.main_size);
#endif
#if defined(__x86_64__)
  mira_emu_switch(&f->sp, E.sched_sp);
#else
  swapcontext(&f->uc, &E.sched_uc);
#endif
#if defined(EMU_ASAN)
  __sanitizer_finish_switch_fiber(f->fake, &E.main_bottom, &E.main_size);
#endif
}

void fiber_main() {
#if defined(EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &E.main_bottom, &E.main_size);
#endif
  for (;;) {
#if defined(EMU_TSAN)
    __tsan_acquire(&E.block_obj);
#endif
    E.body(E.ctx);
#if defined(EMU_TSAN)
    __tsan_release(&E.end_obj);
#endif
    E.cur->state = Fiber::DONE;
    ++E.done;
    yield();  // resumed at the start of the next block
  }
}

std::string site() {
  return std::string(E.cfg ? E.cfg->file : "?") + ":" + std::to_string(E.cfg ? E.cfg->line : 0) + " block (" +
         std::to_string(g_block_idx.x) + "," + std::to_string(g_block_idx.y) + "," + std::to_string(g_block_idx.z) +
         ")";
}

void fail(const std::string& what) {
  if (E.failure.empty()) E.failure = what;
}

// 128-byte aligned, as a GPU's shared-memory window (ldmatrix rows and cp.async need 16-byte alignment).
void* alloc_shared(size_t bytes) {
  void* p = std::aligned_alloc(128, (std::max<size_t>(bytes, 1) + 127) / 128 * 128);
  std::memset(p, 0xFF, bytes);  // NaN as float and double, -1 as integers
  return p;
}

// One block: every fiber from its start to the end of the kernel, in phases between barriers.
void run_block() {
  E.done = 0, E.bar_gen = 0, E.bar_arrived = 0;
  const unsigned nw = (E.nt + 31) / 32;
  E.warp_gen.assign(nw, 0);
  E.warp_arrived.assign(nw, 0);
  E.warp_what.assign(nw, nullptr);
  E.dyn = E.cfg->smem ? static_cast<unsigned char*>(alloc_shared(E.cfg->smem)) : nullptr;
  E.arena = static_cast<unsigned char*>(alloc_shared(kSharedStatic));
#if defined(EMU_TSAN)
  // Fresh shared memory per block, allocated and filled here and published to the block's fibers
  // (block_obj) - the scheduler never acquires from the fibers during a grid, so blocks stay
  // unordered for TSan (races between blocks are reported, except between equal thread indices:
  // a fiber is one TSan thread for all blocks). Freed after the grid, once every fiber's end is
  // acquired: freeing here would race with the fibers' accesses.
  __tsan_release(&E.block_obj);
#endif
  for (unsigned i = 0; i < E.nt; ++i) E.fibers[i]->state = Fiber::RUN;
  for (;;) {
    bool progress = false;
    for (unsigned k = 0; k < E.nt && E.failure.empty(); ++k) {
      Fiber* f = E.fibers[E.reverse ? E.nt - 1 - k : k].get();
      if (f->state == Fiber::DONE || f->state == Fiber::FAILED) continue;
      if (f->state == Fiber::BARRIER && f->gen == E.bar_gen) continue;
      if (f->state == Fiber::WARP && f->gen == E.warp_gen[f->linear / 32]) continue;
      f->state = Fiber::RUN;
      resume(f);
      progress = true;
    }
    if (!E.failure.empty() || E.done == E.nt) break;
    if (!progress) {
      unsigned bar = 0, warp = 0;
      for (unsigned i = 0; i < E.nt; ++i) bar += E.fibers[i]->state == Fiber::BARRIER, warp += E.fibers[i]->state == Fiber::WARP;
      fail("deadlock at " + site() + ": " + std::to_string(bar) + " threads wait at __syncthreads, " +
           std::to_string(warp) + " at a warp-collective op, " + std::to_string(E.done) + " exited (of " +
           std::to_string(E.nt) + "): a barrier or warp-collective op not reached by every thread that must reach it");
      break;
    }
  }
#if defined(EMU_TSAN)
  E.deferred.push_back(E.dyn);
  E.deferred.push_back(E.arena);
#else
  std::free(E.dyn);
  std::free(E.arena);
#endif
  E.dyn = nullptr, E.arena = nullptr;
  E.statics.clear();
  E.static_bytes = 0;
  if (!E.failure.empty())  // abandoned fibers restart from fiber_main next time
    for (unsigned i = 0; i < E.nt; ++i)
      if (E.fibers[i]->state != Fiber::DONE) E.fibers[i]->fresh = true;
}

// MIRA_EMU_STATS=1: at exit, every launch site that ran, with its launch and thread counts (which
// kernels a test run covered).
void count_launch(const LaunchConfig& cfg) {
  static std::map<std::pair<std::string, int>, std::pair<uint64_t, uint64_t>>* sites = nullptr;
  static bool on = std::getenv("MIRA_EMU_STATS") != nullptr;
  if (!on) return;
  if (!sites) {
    sites = new std::map<std::pair<std::string, int>, std::pair<uint64_t, uint64_t>>;
    std::atexit([] {
      for (const auto& s : *sites)
        std::fprintf(stderr, "cuda emulator: launch site %s:%d: %llu launches, %llu threads\n", s.first.first.c_str(),
                     s.first.second, (unsigned long long)s.second.first, (unsigned long long)s.second.second);
    });
  }
  auto& c = (*sites)[{cfg.file, cfg.line}];
  c.first += 1;
  c.second += (uint64_t)cfg.grid.x * cfg.grid.y * cfg.grid.z * cfg.block.x * cfg.block.y * cfg.block.z;
}

}  // namespace

void record_error(cudaError_t e, const char* what) {
  std::fprintf(stderr, "cuda emulator: %s: %s\n", mira_emu_cudaGetErrorName(e), what);
  if (g_last_error == cudaSuccess) g_last_error = e;
}

void run_grid(const void* kernel, const LaunchConfig& cfg, void (*body)(void*), void* ctx) {
  if (E.running) {
    std::fprintf(stderr, "cuda emulator: kernel launched from device code (%s:%d)\n", cfg.file, cfg.line);
    std::abort();
  }
  const dim3 g = cfg.grid, b = cfg.block;
  const uint64_t nt = (uint64_t)b.x * b.y * b.z;
  std::string bad;
  if (nt == 0 || nt > 1024 || b.x > 1024 || b.y > 1024 || b.z > 64) bad = "block size";
  else if (g.x == 0 || g.y == 0 || g.z == 0 || g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535) bad = "grid size";
  if (!bad.empty()) {
    record_error(cudaErrorInvalidConfiguration, (std::string(cfg.file) + ":" + std::to_string(cfg.line) +
                                                 ": invalid " + bad).c_str());
    return;
  }
  const auto attr = E.max_dyn_smem.find(kernel);
  const size_t allowed = attr == E.max_dyn_smem.end() ? kSharedStatic : std::max<size_t>(kSharedStatic, attr->second);
  if (cfg.smem > allowed) {
    record_error(cudaErrorInvalidValue, (std::string(cfg.file) + ":" + std::to_string(cfg.line) + ": " +
                                         std::to_string(cfg.smem) + " B of dynamic shared memory, allowed " +
                                         std::to_string(allowed) + " (cudaFuncSetAttribute)").c_str());
    return;
  }
  if (g_last_error != cudaSuccess) return;  // a sticky error: the context is unusable
  count_launch(cfg);
  if (!E.running && E.fibers.empty()) {
    const char* order = std::getenv("MIRA_EMU_ORDER");
    E.reverse = order && std::string(order) == "reverse";
#if defined(EMU_TSAN)
    E.sched_tsan = __tsan_get_current_fiber();
#endif
  }
  while (E.fibers.size() < nt) E.fibers.push_back(new_fiber());
  if (E.xchg.size() < (nt + 31) / 32 * 64) E.xchg.resize((nt + 31) / 32 * 64);  // written before read
  if (E.wx.size() < (nt + 31) / 32 * 64 * kExchangeBytes) E.wx.resize((nt + 31) / 32 * 64 * kExchangeBytes);
#if defined(EMU_TSAN)
  if (E.warp_obj.size() < (nt + 31) / 32) E.warp_obj.resize((nt + 31) / 32);
#endif
  E.running = true;
  E.nt = (unsigned)nt, E.body = body, E.ctx = ctx, E.cfg = &cfg, E.failure.clear();
  g_grid_dim = g, g_block_dim = b;
  for (unsigned i = 0; i < nt; ++i) {
    Fiber* f = E.fibers[i].get();
    f->linear = i;
    f->tid = uint3{i % b.x, (i / b.x) % b.y, i / (b.x * b.y)};
  }
  const uint64_t nblocks = (uint64_t)g.x * g.y * g.z;
  for (uint64_t k = 0; k < nblocks && E.failure.empty(); ++k) {
    const uint64_t bi = E.reverse ? nblocks - 1 - k : k;
    g_block_idx = uint3{(unsigned)(bi % g.x), (unsigned)((bi / g.x) % g.y), (unsigned)(bi / ((uint64_t)g.x * g.y))};
    run_block();
  }
  E.running = false;
  E.cur = nullptr;
  g_thread_idx = nullptr;
#if defined(EMU_TSAN)
  __tsan_acquire(&E.end_obj);
  for (void* p : E.deferred) std::free(p);
  E.deferred.clear();
#endif
  if (!E.failure.empty()) record_error(cudaErrorLaunchFailure, E.failure.c_str());
}

void device_trap(const char* what) {
  fail(std::string(what) + " at " + site() + " thread (" + std::to_string(E.cur->tid.x) + "," +
       std::to_string(E.cur->tid.y) + "," + std::to_string(E.cur->tid.z) + ")");
  E.cur->state = Fiber::FAILED;
  yield();  // never resumed: the grid is abandoned
  std::abort();
}

void syncthreads() {
  if (!E.running) device_trap("__syncthreads outside a kernel");
  Fiber* f = E.cur;
  if (E.done > 0) device_trap("__syncthreads after some threads of the block exited");
#if defined(EMU_TSAN)
  char* obj = &E.bar_obj[E.bar_gen & 1];
  __tsan_release(obj);
#endif
  if (++E.bar_arrived == E.nt) {
    E.bar_arrived = 0;
    ++E.bar_gen;
  } else {
    f->state = Fiber::BARRIER;
    f->gen = E.bar_gen;
    yield();
  }
#if defined(EMU_TSAN)
  __tsan_acquire(obj);
#endif
}

namespace {
// Every lane of warp w must be at the same kind of collective op in one generation (a shuffle in some
// lanes and an mma.sync in others is a divergence that hangs or is undefined on a GPU).
void same_collective(unsigned w, const char* what) {
  if (E.warp_arrived[w] == 0) {
    E.warp_what[w] = what;
  } else if (std::strcmp(E.warp_what[w], what) != 0) {
    device_trap((std::string("lanes of one warp at different warp-collective ops: ") + E.warp_what[w] + " and " +
                 what).c_str());
  }
}

// The calling lane (fiber f) of warp w arrives at the warp's collective of generation g, its payload
// already in slot set g & 1; it returns once all 32 lanes have arrived (the last one to arrive
// opens the next generation and wakes the others).
void warp_arrive_and_wait(Fiber* f, unsigned w, uint64_t g) {
#if defined(EMU_TSAN)
  char* obj = &E.warp_obj[w][g & 1];
  __tsan_release(obj);
#endif
  if (++E.warp_arrived[w] == 32) {
    E.warp_arrived[w] = 0;
    ++E.warp_gen[w];
  } else {
    f->state = Fiber::WARP;
    f->gen = g;
    yield();
  }
#if defined(EMU_TSAN)
  __tsan_acquire(obj);
#endif
}
}  // namespace

uint64_t warp_shuffle(unsigned mask, uint64_t bits, ShuffleKind kind, int arg, const char* what) {
  if (!E.running) device_trap("warp shuffle outside a kernel");
  Fiber* f = E.cur;
  if (mask != 0xffffffffu) device_trap((std::string(what) + " with a partial mask (not emulated)").c_str());
  const unsigned w = f->linear / 32, lane = f->linear % 32;
  if ((w + 1) * 32 > E.nt) device_trap((std::string(what) + " in a partial warp (block size not a multiple of 32)").c_str());
  const unsigned src = kind == kXor ? (lane ^ (unsigned)arg) & 31u : (unsigned)arg & 31u;
  const uint64_t g = E.warp_gen[w];
  same_collective(w, "a warp shuffle");
  // Two slot sets by generation parity: a lane that runs ahead into the next shuffle writes the
  // other set, and cannot reach the one after before every lane has read this one.
  uint64_t* slots = &E.xchg[((size_t)w * 2 + (g & 1)) * 32];
  slots[lane] = bits;
  warp_arrive_and_wait(f, w, g);
  return slots[src];
}

void warp_exchange(const void* in, size_t bytes, void* all, const char* what) {
  if (!E.running) device_trap((std::string(what) + " outside a kernel").c_str());
  Fiber* f = E.cur;
  if (bytes > kExchangeBytes) device_trap("warp_exchange payload too large");
  const unsigned w = f->linear / 32, lane = f->linear % 32;
  if ((w + 1) * 32 > E.nt) device_trap((std::string(what) + " in a partial warp (block size not a multiple of 32)").c_str());
  const uint64_t g = E.warp_gen[w];
  same_collective(w, what);
  // Two slot sets by generation parity, as warp_shuffle: every lane copies the slots out right after
  // it is resumed, before any lane can reach the next collective with the same parity.
  unsigned char* slots = &E.wx[((size_t)w * 2 + (g & 1)) * 32 * kExchangeBytes];
  if (bytes) std::memcpy(slots + lane * kExchangeBytes, in, bytes);
  warp_arrive_and_wait(f, w, g);
  if (all && bytes)
    for (unsigned l = 0; l < 32; ++l)
      std::memcpy(static_cast<unsigned char*>(all) + l * bytes, slots + l * kExchangeBytes, bytes);
}

unsigned lane_id() {
  if (!E.running) device_trap("lane id outside a kernel");
  return E.cur->linear % 32;
}

void* dynamic_shared_raw() {
  if (!E.running) device_trap("dynamic shared memory outside a kernel");
  return E.dyn;
}

void* static_shared(const void* key, size_t bytes) {
  if (!E.running) device_trap("__shared__ variable outside a kernel");
  for (auto& s : E.statics)
    if (s.first == key) return E.arena + s.second;
  const size_t off = (E.static_bytes + 15) & ~size_t(15);
  if (off + bytes > kSharedStatic) device_trap("static shared memory above 48 KB");
  if (off + bytes + E.cfg->smem > kSharedOptIn) device_trap("static + dynamic shared memory above 227 KB");
  E.static_bytes = off + bytes;
  E.statics.emplace_back(key, off);
  return E.arena + off;
}

// ---- device memory --------------------------------------------------------------------------------
namespace {
std::map<uintptr_t, size_t>& allocations() {
  static std::map<uintptr_t, size_t> m;
  return m;
}
std::map<void*, int>& streams() {  // live streams (value unused)
  static std::map<void*, int> m;
  return m;
}
}  // namespace

bool is_device_range(const void* p, size_t bytes) {
  const auto& m = allocations();
  auto it = m.upper_bound((uintptr_t)p);
  if (it == m.begin()) return false;
  --it;
  const uintptr_t a = (uintptr_t)p;
  return a >= it->first && a - it->first <= it->second && bytes <= it->second - (a - it->first);
}
static bool is_device_ptr(const void* p) {
  const auto& m = allocations();
  auto it = m.upper_bound((uintptr_t)p);
  if (it == m.begin()) return false;
  --it;
  return (uintptr_t)p - it->first < std::max<size_t>(it->second, 1);
}
static cudaError_t check_stream(cudaStream_t s, const char* what) {
  if (s && !streams().count((void*)s)) {
    record_error(cudaErrorInvalidResourceHandle, what);
    return cudaErrorInvalidResourceHandle;
  }
  return cudaSuccess;
}

}  // namespace emu

using emu::record_error;

cudaError_t mira_emu_cudaMalloc(void** p, size_t bytes) {
  if (!p) return cudaErrorInvalidValue;
  // Exact size (ASan builds see overruns of the requested size), 256-byte aligned like cudaMalloc.
  void* m = ::operator new(std::max<size_t>(bytes, 1), std::align_val_t(256), std::nothrow);
  if (!m) return cudaErrorMemoryAllocation;
  emu::allocations()[(uintptr_t)m] = bytes;
  *p = m;
  return cudaSuccess;
}
cudaError_t mira_emu_cudaFree(void* p) {
  if (!p) return cudaSuccess;
  auto& m = emu::allocations();
  auto it = m.find((uintptr_t)p);
  if (it == m.end()) {
    record_error(cudaErrorInvalidValue, "cudaFree of a pointer that cudaMalloc did not return");
    return cudaErrorInvalidValue;
  }
  m.erase(it);
  ::operator delete(p, std::align_val_t(256));
  return cudaSuccess;
}
cudaError_t mira_emu_cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
  if (cudaError_t e = emu::check_stream(s, "cudaMemsetAsync: unknown stream")) return e;
  if (bytes == 0) return cudaSuccess;
  if (!emu::is_device_range(p, bytes)) {
    record_error(cudaErrorInvalidValue, "cudaMemsetAsync outside a device allocation");
    return cudaErrorInvalidValue;
  }
  std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t mira_emu_cudaMemset(void* p, int value, size_t bytes) { return mira_emu_cudaMemsetAsync(p, value, bytes); }
cudaError_t mira_emu_cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (cudaError_t e = emu::check_stream(s, "cudaMemcpyAsync: unknown stream")) return e;
  if (bytes == 0) return cudaSuccess;
  const bool dd = emu::is_device_range(dst, bytes), sd = emu::is_device_range(src, bytes);
  const bool dh = !emu::is_device_ptr(dst), sh = !emu::is_device_ptr(src);
  bool ok = false;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = sh && dd; break;
    case cudaMemcpyDeviceToHost: ok = sd && dh; break;
    case cudaMemcpyDeviceToDevice: ok = sd && dd; break;
    case cudaMemcpyHostToHost: ok = sh && dh; break;
    case cudaMemcpyDefault: ok = (sd || sh) && (dd || dh); break;
  }
  if (!ok) {
    const std::string what = "cudaMemcpyAsync of " + std::to_string(bytes) + " B: kind " + std::to_string((int)kind) +
                             " but source is " + (sd ? "device" : sh ? "host" : "partly device") +
                             " memory and destination " + (dd ? "device" : dh ? "host" : "partly device") + " memory";
    record_error(cudaErrorInvalidValue, what.c_str());
    return cudaErrorInvalidValue;
  }
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t mira_emu_cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return mira_emu_cudaMemcpyAsync(dst, src, bytes, kind);
}
cudaError_t mira_emu_cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  if (!s) return cudaErrorInvalidValue;
  void* h = ::operator new(1);
  emu::streams()[h] = (int)flags;
  *s = static_cast<cudaStream_t>(h);
  return cudaSuccess;
}
cudaError_t mira_emu_cudaStreamCreate(cudaStream_t* s) { return mira_emu_cudaStreamCreateWithFlags(s, 0); }
cudaError_t mira_emu_cudaStreamDestroy(cudaStream_t s) {
  if (!s || !emu::streams().erase((void*)s)) return cudaErrorInvalidResourceHandle;
  ::operator delete((void*)s);
  return cudaSuccess;
}
cudaError_t mira_emu_cudaStreamSynchronize(cudaStream_t s) {
  if (cudaError_t e = emu::check_stream(s, "cudaStreamSynchronize: unknown stream")) return e;
  return emu::g_last_error;  // like the runtime: a sticky error is reported by every later call
}
cudaError_t mira_emu_cudaDeviceSynchronize() { return emu::g_last_error; }
cudaError_t mira_emu_cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
cudaError_t mira_emu_cudaGetDevice(int* device) {
  if (device) *device = 0;
  return cudaSuccess;
}
cudaError_t mira_emu_cudaGetLastError() {
  const cudaError_t e = emu::g_last_error;
  emu::g_last_error = cudaSuccess;  // (a real sticky error would stay; tests continue after one)
  return e;
}
cudaError_t mira_emu_cudaPeekAtLastError() { return emu::g_last_error; }
const char* mira_emu_cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    default: return "cudaError (emulated)";
  }
}
const char* mira_emu_cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "reported by the CPU emulator (tests/emu; details on stderr)";
}
cudaError_t mira_emu_cudaFuncSetAttributeRaw(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || (size_t)value > emu::kSharedOptIn) {
    record_error(cudaErrorInvalidValue, "cudaFuncSetAttribute: dynamic shared memory above sm_90's 227 KB");
    return cudaErrorInvalidValue;
  }
  emu::E.max_dyn_smem[kernel] = value;
  return cudaSuccess;
}

// ---- cuBLAS ---------------------------------------------------------------------------------------
namespace {
struct EmuBlasHandle {
  cudaStream_t stream = nullptr;
  cublasMath_t mode = CUBLAS_DEFAULT_MATH;
};
std::map<void*, EmuBlasHandle>& handles() {
  static std::map<void*, EmuBlasHandle> m;
  return m;
}
EmuBlasHandle* handle_of(cublasHandle_t h) {
  auto it = handles().find((void*)h);
  return it == handles().end() ? nullptr : &it->second;
}
float tf32(float x) {  // round to 10 explicit mantissa bits (nearest even), as TF32 tensor cores read fp32
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & 0xffffe000u;
  std::memcpy(&x, &u, 4);
  return x;
}
cublasStatus_t blas_fail(const std::string& what) {
  record_error(cudaErrorIllegalAddress, ("cuBLAS: " + what).c_str());
  return CUBLAS_STATUS_EXECUTION_FAILED;
}
// Column-major C (m x n, ldc) = alpha op(A) op(B) + beta C, elements read through ga / gb (bf16 or
// fp32 storage), double accumulation; the BLAS argument rules and the operands' extents checked.
template <typename GA, typename GB>
cublasStatus_t gemm_core(cublasHandle_t hd, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                         const float* alpha, const void* a, size_t a_elem, int lda, const void* b, size_t b_elem,
                         int ldb, const float* beta, float* c, int ldc, GA ga, GB gb, bool allow_tf32) {
  EmuBlasHandle* h = handle_of(hd);
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  auto op_ok = [](cublasOperation_t o) { return o == CUBLAS_OP_N || o == CUBLAS_OP_T; };
  const int a_rows = ta == CUBLAS_OP_N ? m : k, b_rows = tb == CUBLAS_OP_N ? k : n;
  const int a_cols = ta == CUBLAS_OP_N ? k : m, b_cols = tb == CUBLAS_OP_N ? n : k;
  if (!op_ok(ta) || !op_ok(tb) || m < 0 || n < 0 || k < 0 || lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) ||
      ldc < std::max(1, m) || !alpha || !beta)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (emu::check_stream(h->stream, "cuBLAS handle bound to an unknown stream")) return CUBLAS_STATUS_EXECUTION_FAILED;
  if (emu::is_device_ptr(alpha) || emu::is_device_ptr(beta))
    return blas_fail("alpha/beta are device pointers but the pointer mode is host");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const bool read_ab = k > 0 && *alpha != 0.0f;
  auto extent = [](int rows, int cols, int ld) { return ((size_t)(cols - 1) * (size_t)ld + (size_t)rows); };
  if (read_ab && !emu::is_device_range(a, extent(a_rows, a_cols, lda) * a_elem))
    return blas_fail("operand A (" + std::to_string(a_rows) + " x " + std::to_string(a_cols) + ", lda " +
                     std::to_string(lda) + ") is not inside one device allocation");
  if (read_ab && !emu::is_device_range(b, extent(b_rows, b_cols, ldb) * b_elem))
    return blas_fail("operand B (" + std::to_string(b_rows) + " x " + std::to_string(b_cols) + ", ldb " +
                     std::to_string(ldb) + ") is not inside one device allocation");
  if (!emu::is_device_range(c, extent(m, n, ldc) * sizeof(float)))
    return blas_fail("output C (" + std::to_string(m) + " x " + std::to_string(n) + ", ldc " + std::to_string(ldc) +
                     ") is not inside one device allocation");
  const bool round = allow_tf32 && (h->mode & 0xf) == CUBLAS_TF32_TENSOR_OP_MATH;
  std::vector<double> arow((size_t)k);
  for (int i = 0; i < m; ++i) {
    for (int l = 0; l < k && read_ab; ++l) {
      float v = ta == CUBLAS_OP_N ? ga(a, (size_t)l * lda + i) : ga(a, (size_t)i * lda + l);
      arow[(size_t)l] = round ? tf32(v) : v;
    }
    for (int j = 0; j < n; ++j) {
      double s = 0.0;
      for (int l = 0; l < k && read_ab; ++l) {
        float v = tb == CUBLAS_OP_N ? gb(b, (size_t)j * ldb + l) : gb(b, (size_t)l * ldb + j);
        s += arow[(size_t)l] * (double)(round ? tf32(v) : v);
      }
      float& out = c[(size_t)j * ldc + i];
      // beta == 0: C is not read (it may hold NaN), as cuBLAS documents.
      out = (float)((double)*alpha * s + (*beta == 0.0f ? 0.0 : (double)*beta * (double)out));
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}
float get_f32(const void* p, size_t i) { return static_cast<const float*>(p)[i]; }
float get_bf16(const void* p, size_t i) { return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]); }
}  // namespace

cublasStatus_t mira_emu_cublasCreate(cublasHandle_t* h) {
  if (!h) return CUBLAS_STATUS_INVALID_VALUE;
  void* p = ::operator new(1);
  handles()[p] = EmuBlasHandle{};
  *h = static_cast<cublasHandle_t>(p);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t mira_emu_cublasDestroy(cublasHandle_t h) {
  if (!handles().erase((void*)h)) return CUBLAS_STATUS_NOT_INITIALIZED;
  ::operator delete((void*)h);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t mira_emu_cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  EmuBlasHandle* e = handle_of(h);
  if (!e) return CUBLAS_STATUS_NOT_INITIALIZED;
  e->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t mira_emu_cublasSetMathMode(cublasHandle_t h, cublasMath_t mode) {
  EmuBlasHandle* e = handle_of(h);
  if (!e) return CUBLAS_STATUS_NOT_INITIALIZED;
  e->mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t mira_emu_cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                    const float* alpha, const float* a, int lda, const float* b, int ldb,
                                    const float* beta, float* c, int ldc) {
  return gemm_core(h, ta, tb, m, n, k, alpha, a, 4, lda, b, 4, ldb, beta, c, ldc, get_f32, get_f32, true);
}
cublasStatus_t mira_emu_cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                                                  int n, int k, const float* alpha, const float* a, int lda,
                                                  long long stride_a, const float* b, int ldb, long long stride_b,
                                                  const float* beta, float* c, int ldc, long long stride_c, int count) {
  if (count < 0) return CUBLAS_STATUS_INVALID_VALUE;
  for (int i = 0; i < count; ++i) {
    const cublasStatus_t s = gemm_core(h, ta, tb, m, n, k, alpha, a + i * stride_a, 4, lda, b + i * stride_b, 4, ldb,
                                       beta, c + i * stride_c, ldc, get_f32, get_f32, true);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
  }
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t mira_emu_cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                     const void* alpha, const void* a, cudaDataType a_type, int lda, const void* b,
                                     cudaDataType b_type, int ldb, const void* beta, void* c, cudaDataType c_type,
                                     int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
  // Supported: fp32 or bf16 inputs (both the same), fp32 output, fp32 compute (alpha/beta fp32).
  const bool in_ok = a_type == b_type && (a_type == CUDA_R_16BF || a_type == CUDA_R_32F);
  const bool comp_ok = compute == CUBLAS_COMPUTE_32F || compute == CUBLAS_COMPUTE_32F_PEDANTIC ||
                       compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  if (!in_ok || c_type != CUDA_R_32F || !comp_ok) return CUBLAS_STATUS_NOT_SUPPORTED;
  const float* al = static_cast<const float*>(alpha);
  const float* be = static_cast<const float*>(beta);
  float* cf = static_cast<float*>(c);
  if (a_type == CUDA_R_16BF)
    return gemm_core(h, ta, tb, m, n, k, al, a, 2, lda, b, 2, ldb, be, cf, ldc, get_bf16, get_bf16, false);
  return gemm_core(h, ta, tb, m, n, k, al, a, 4, lda, b, 4, ldb, be, cf, ldc, get_f32, get_f32,
                   compute != CUBLAS_COMPUTE_32F_PEDANTIC);
}
const char* mira_emu_cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED (emulated; details on stderr)";
    default: return "cuBLAS error (emulated)";
  }
}

// ---- cuBLASLt ---------------------------------------------------------------------------------------
// The subset kernels/cuda/gemm_lt.cu uses: bf16 (or fp32) A and B, fp32 C = D, fp32 compute and
// scale, epilogue DEFAULT or BIAS (fp32 bias along D's rows), any transposes. Like the real library,
// the heuristic may offer no algorithm; this emulation offers none when an operand's alignment (the
// preference's MIN_ALIGNMENT) is below 16 bytes or a leading dimension is not a multiple of 8, so the
// callers' composed fallback is exercised by the tests (a stricter rule than cuBLASLt's own).
namespace {
struct EmuLtDesc {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // -1: the type of D
};
struct EmuLtLayout {
  cudaDataType_t type;
  uint64_t rows, cols;
  int64_t ld;
};
struct EmuLtPref {
  uint64_t max_workspace = 0;
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D
};
constexpr uint64_t kLtAlgoMagic = 0x4d4952414c54ull;  // algo.data[0]; data[1] = the alignment it needs
std::map<void*, int>& lt_objects() {  // live handles/descriptors/layouts/preferences -> kind
  static std::map<void*, int> m;
  return m;
}
enum { LT_HANDLE = 1, LT_DESC, LT_LAYOUT, LT_PREF };
template <typename T>
T* lt_get(const void* p, int kind) {
  auto it = lt_objects().find(const_cast<void*>(p));
  return it == lt_objects().end() || it->second != kind ? nullptr : static_cast<T*>(const_cast<void*>(p));
}
template <typename T, typename H>
cublasStatus_t lt_create(H* out, int kind, T value) {
  if (!out) return CUBLAS_STATUS_INVALID_VALUE;
  T* p = new T(value);
  lt_objects()[p] = kind;
  *out = reinterpret_cast<H>(p);
  return CUBLAS_STATUS_SUCCESS;
}
template <typename T>
cublasStatus_t lt_destroy(const void* p, int kind) {
  T* t = lt_get<T>(p, kind);
  if (!t) return CUBLAS_STATUS_NOT_INITIALIZED;
  lt_objects().erase(t);
  delete t;
  return CUBLAS_STATUS_SUCCESS;
}
size_t lt_elem(cudaDataType_t t) { return t == CUDA_R_16BF ? 2 : t == CUDA_R_32F ? 4 : 0; }
float lt_read(const void* p, cudaDataType_t t, size_t i) { return t == CUDA_R_16BF ? get_bf16(p, i) : get_f32(p, i); }
// The problem the descriptors describe (m x n output, inner k), or false when they do not fit together
// or use something this emulation does not implement.
bool lt_problem(const EmuLtDesc& d, const EmuLtLayout& a, const EmuLtLayout& b, const EmuLtLayout& c,
                const EmuLtLayout& dl, uint64_t* m, uint64_t* n, uint64_t* k) {
  const uint64_t am = d.ta == CUBLAS_OP_N ? a.rows : a.cols, ak = d.ta == CUBLAS_OP_N ? a.cols : a.rows;
  const uint64_t bk = d.tb == CUBLAS_OP_N ? b.rows : b.cols, bn = d.tb == CUBLAS_OP_N ? b.cols : b.rows;
  *m = am, *n = bn, *k = ak;
  const bool epi_ok = d.epilogue == CUBLASLT_EPILOGUE_DEFAULT ||
                      (d.epilogue == CUBLASLT_EPILOGUE_BIAS && (d.bias_type == -1 || d.bias_type == CUDA_R_32F));
  return d.compute == CUBLAS_COMPUTE_32F && d.scale == CUDA_R_32F && epi_ok && a.type == b.type && lt_elem(a.type) &&
         c.type == CUDA_R_32F && dl.type == CUDA_R_32F && c.rows == dl.rows && c.cols == dl.cols && c.ld == dl.ld &&
         ak == bk && dl.rows == am && dl.cols == bn && a.ld >= (int64_t)std::max<uint64_t>(1, a.rows) &&
         b.ld >= (int64_t)std::max<uint64_t>(1, b.rows) && dl.ld >= (int64_t)std::max<uint64_t>(1, dl.rows);
}
}  // namespace

cublasStatus_t mira_emu_cublasLtCreate(cublasLtHandle_t* h) { return lt_create(h, LT_HANDLE, char(0)); }
cublasStatus_t mira_emu_cublasLtDestroy(cublasLtHandle_t h) { return lt_destroy<char>(h, LT_HANDLE); }
cublasStatus_t mira_emu_cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute,
                                                 cudaDataType_t scale) {
  EmuLtDesc v;
  v.compute = compute, v.scale = scale;
  return lt_create(d, LT_DESC, v);
}
cublasStatus_t mira_emu_cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { return lt_destroy<EmuLtDesc>(d, LT_DESC); }
cublasStatus_t mira_emu_cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                                       const void* buf, size_t bytes) {
  EmuLtDesc* e = lt_get<EmuLtDesc>(d, LT_DESC);
  if (!e || !buf) return CUBLAS_STATUS_INVALID_VALUE;
  auto take = [&](auto& field) {
    if (bytes != sizeof field) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(&field, buf, bytes);
    return CUBLAS_STATUS_SUCCESS;
  };
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return take(e->ta);
    case CUBLASLT_MATMUL_DESC_TRANSB: return take(e->tb);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return take(e->epilogue);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return take(e->bias);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return take(e->bias_type);
    default: return CUBLAS_STATUS_NOT_SUPPORTED;  // not used by the sources; add it here when it is
  }
}
cublasStatus_t mira_emu_cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType type, uint64_t rows,
                                                   uint64_t cols, int64_t ld) {
  return lt_create(l, LT_LAYOUT, EmuLtLayout{type, rows, cols, ld});
}
cublasStatus_t mira_emu_cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  return lt_destroy<EmuLtLayout>(l, LT_LAYOUT);
}
cublasStatus_t mira_emu_cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
  return lt_create(p, LT_PREF, EmuLtPref{});
}
cublasStatus_t mira_emu_cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  return lt_destroy<EmuLtPref>(p, LT_PREF);
}
cublasStatus_t mira_emu_cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                             cublasLtMatmulPreferenceAttributes_t attr,
                                                             const void* buf, size_t bytes) {
  EmuLtPref* e = lt_get<EmuLtPref>(p, LT_PREF);
  if (!e || !buf) return CUBLAS_STATUS_INVALID_VALUE;
  int slot = -1;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      if (bytes != sizeof e->max_workspace) return CUBLAS_STATUS_INVALID_VALUE;
      std::memcpy(&e->max_workspace, buf, bytes);
      return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: slot = 0; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: slot = 1; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: slot = 2; break;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: slot = 3; break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (bytes != sizeof(uint32_t)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&e->align[slot], buf, bytes);
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t mira_emu_cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d,
                                                       cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                                       cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl,
                                                       cublasLtMatmulPreference_t pref, int requested,
                                                       cublasLtMatmulHeuristicResult_t results[], int* found) {
  const EmuLtDesc* e = lt_get<EmuLtDesc>(d, LT_DESC);
  const EmuLtLayout *la = lt_get<EmuLtLayout>(a, LT_LAYOUT), *lb = lt_get<EmuLtLayout>(b, LT_LAYOUT),
                    *lc = lt_get<EmuLtLayout>(c, LT_LAYOUT), *ld = lt_get<EmuLtLayout>(dl, LT_LAYOUT);
  const EmuLtPref* p = lt_get<EmuLtPref>(pref, LT_PREF);
  if (!lt_get<char>(h, LT_HANDLE) || !e || !la || !lb || !lc || !ld || !p || requested < 1 || !results || !found)
    return CUBLAS_STATUS_INVALID_VALUE;
  *found = 0;
  uint64_t m, n, k;
  if (!lt_problem(*e, *la, *lb, *lc, *ld, &m, &n, &k)) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t align = std::min(std::min(p->align[0], p->align[1]), std::min(p->align[2], p->align[3]));
  if (align < 16 || la->ld % 8 || lb->ld % 8 || ld->ld % 8) return CUBLAS_STATUS_NOT_SUPPORTED;
  results[0] = cublasLtMatmulHeuristicResult_t{};
  results[0].algo.data[0] = kLtAlgoMagic;
  results[0].algo.data[1] = align;
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *found = 1;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t mira_emu_cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void* alpha, const void* a,
                                       cublasLtMatrixLayout_t al, const void* b, cublasLtMatrixLayout_t bl,
                                       const void* beta, const void* c, cublasLtMatrixLayout_t cl, void* dp,
                                       cublasLtMatrixLayout_t dl, const cublasLtMatmulAlgo_t* algo, void* workspace,
                                       size_t workspace_bytes, cudaStream_t stream) {
  const EmuLtDesc* e = lt_get<EmuLtDesc>(d, LT_DESC);
  const EmuLtLayout *la = lt_get<EmuLtLayout>(al, LT_LAYOUT), *lb = lt_get<EmuLtLayout>(bl, LT_LAYOUT),
                    *lc = lt_get<EmuLtLayout>(cl, LT_LAYOUT), *ld = lt_get<EmuLtLayout>(dl, LT_LAYOUT);
  if (!lt_get<char>(h, LT_HANDLE) || !e || !la || !lb || !lc || !ld || !alpha || !beta || !algo ||
      algo->data[0] != kLtAlgoMagic)
    return CUBLAS_STATUS_INVALID_VALUE;
  uint64_t m, n, k;
  if (!lt_problem(*e, *la, *lb, *lc, *ld, &m, &n, &k)) return CUBLAS_STATUS_NOT_SUPPORTED;
  (void)workspace, (void)workspace_bytes;
  if (emu::check_stream(stream, "cublasLtMatmul: unknown stream")) return CUBLAS_STATUS_EXECUTION_FAILED;
  if (emu::is_device_ptr(alpha) || emu::is_device_ptr(beta))
    return blas_fail("cublasLtMatmul: alpha/beta are device pointers but the pointer mode is host");
  const float fa = *static_cast<const float*>(alpha), fb = *static_cast<const float*>(beta);
  // The algorithm was chosen for an alignment: a less aligned pointer is a fault on a GPU.
  for (const void* p : {a, b, c, static_cast<const void*>(dp)})
    if (reinterpret_cast<uintptr_t>(p) % algo->data[1] != 0)
      return blas_fail("cublasLtMatmul: an operand is less aligned than the algorithm's " +
                       std::to_string(algo->data[1]) + " bytes");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  auto extent = [](const EmuLtLayout& l) { return (size_t)((l.cols - 1) * (uint64_t)l.ld + l.rows); };
  const bool read_ab = k > 0 && fa != 0.0f;
  if (read_ab && (!emu::is_device_range(a, extent(*la) * lt_elem(la->type)) ||
                  !emu::is_device_range(b, extent(*lb) * lt_elem(lb->type))))
    return blas_fail("cublasLtMatmul: operand A or B is not inside one device allocation");
  if (!emu::is_device_range(dp, extent(*ld) * 4) || (fb != 0.0f && !emu::is_device_range(c, extent(*lc) * 4)))
    return blas_fail("cublasLtMatmul: C or D is not inside one device allocation");
  const bool bias = e->epilogue == CUBLASLT_EPILOGUE_BIAS;
  if (bias && !emu::is_device_range(e->bias, m * 4))
    return blas_fail("cublasLtMatmul: the bias (" + std::to_string(m) + " floats) is not inside one device allocation");
  std::vector<double> out((size_t)(m * n));  // computed first: D may alias C
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t i = 0; i < m; ++i) {
      double s = 0.0;
      for (uint64_t l = 0; l < k && read_ab; ++l) {
        const float av = lt_read(a, la->type, e->ta == CUBLAS_OP_N ? l * la->ld + i : i * la->ld + l);
        const float bv = lt_read(b, lb->type, e->tb == CUBLAS_OP_N ? j * lb->ld + l : l * lb->ld + j);
        s += (double)av * (double)bv;
      }
      double v = (double)fa * s;
      if (fb != 0.0f) v += (double)fb * get_f32(c, j * lc->ld + i);  // beta 0: C not read
      if (bias) v += get_f32(e->bias, i);
      out[j * m + i] = v;
    }
  float* D = static_cast<float*>(dp);
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t i = 0; i < m; ++i) D[j * ld->ld + i] = (float)out[j * m + i];
  return CUBLAS_STATUS_SUCCESS;
}
