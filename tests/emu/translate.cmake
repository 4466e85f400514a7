# Translates a CUDA source of kernels/cuda (.cu or .cuh) into host C++ for the CPU emulator
# (tests/emu/cuda_emu.h, docs/cuda.md "The CUDA backend on a CPU emulator"). Run at build time:
#   cmake -DIN=kernels/cuda/x.cu -DOUT=<build>/emu_gen/kernels/cuda/x.cu.cpp -P translate.cmake
# Three purely textual rewrites, each on one line, so line numbers are kept (and a #line directive
# makes __FILE__, compiler errors and the emulator's launch-site messages name the original file):
#   kernel<<<grid, block, smem, stream>>>(args)  ->  kernel % ::emu::LaunchConfig(__FILE__, __LINE__,
#                                                    grid, block, smem, stream) << ::emu::launch_args(args)
#       (the operators bind as ((kernel % config) << args); the kernel expression must be a name or a
#       template-id, as every launch in kernels/cuda is)
#   extern __shared__ T name[];                  ->  T* name = ::emu::dynamic_shared<T>();
#   __shared__ T name[N]...; / __shared__ T name; ->  EMU_STATIC_SHARED(T, name, [N]...);  (per block)
# Everything else (__global__, threadIdx, __syncthreads, intrinsics, the runtime API) is handled by
# the force-included header cuda_emu.h. A source that still contains "<<<" or "__shared__" after
# the rewrite is refused, so a new construct cannot slip through untranslated.
if(NOT IN OR NOT OUT)
  message(FATAL_ERROR "translate.cmake: set -DIN=<source> -DOUT=<output>")
endif()
file(READ "${IN}" src)
set(id "[A-Za-z_][A-Za-z0-9_]*")
string(REPLACE "<<<" " % ::emu::LaunchConfig(__FILE__, __LINE__, " src "${src}")
string(REPLACE ">>>(" ") << ::emu::launch_args(" src "${src}")
string(REGEX REPLACE "extern[ \t]+__shared__[ \t]+(${id})[ \t]+(${id})[ \t]*\\[[ \t]*\\][ \t]*;"
       "\\1* \\2 = ::emu::dynamic_shared<\\1>();" src "${src}")
string(REGEX REPLACE "__shared__[ \t]+(${id})[ \t]+(${id})[ \t]*((\\[[^];\n]*\\])*)[ \t]*;"
       "EMU_STATIC_SHARED(\\1, \\2, \\3);" src "${src}")
foreach(bad "<<<" ">>>" "__shared__")
  string(FIND "${src}" "${bad}" pos)
  if(NOT pos EQUAL -1)
    string(SUBSTRING "${src}" ${pos} 80 ctx)
    message(FATAL_ERROR "translate.cmake: ${IN}: '${bad}' left untranslated near: ${ctx}")
  endif()
endforeach()
get_filename_component(abs "${IN}" ABSOLUTE)
file(WRITE "${OUT}.tmp" "#line 1 \"${abs}\"\n${src}")
# Rewrite only on change: an unchanged translation does not recompile its dependants.
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
