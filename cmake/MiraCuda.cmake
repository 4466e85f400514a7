# The CUDA backend: MIRA_CUDA=AUTO enables it when nvcc is found. We link the CUDA runtime
# (static), cuBLAS and NCCL, never libcuda (CUDA::cuda_driver): the binary must start and run its
# CPU paths on machines without a GPU driver; the runtime loads the driver lazily.
set(MIRA_HAVE_CUDA OFF)
if(NOT MIRA_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
      set(CMAKE_CUDA_ARCHITECTURES 90)   # H100/H200; presets override ("80;90" for release)
    endif()
    enable_language(CUDA)
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    find_package(CUDAToolkit REQUIRED)
    find_path(NCCL_INCLUDE_DIR nccl.h
      HINTS $ENV{NCCL_ROOT} $ENV{NCCL_HOME} ${CUDAToolkit_LIBRARY_ROOT} /usr/local/cuda
      PATH_SUFFIXES include)
    find_library(NCCL_LIBRARY nccl
      HINTS $ENV{NCCL_ROOT} $ENV{NCCL_HOME} ${CUDAToolkit_LIBRARY_ROOT} /usr/local/cuda
      PATH_SUFFIXES lib lib64)
    if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
      message(FATAL_ERROR "CUDA found but NCCL not: set NCCL_ROOT (or NCCL_HOME), or configure with -DMIRA_CUDA=OFF")
    endif()
    add_library(mira_nccl INTERFACE)
    target_include_directories(mira_nccl INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(mira_nccl INTERFACE ${NCCL_LIBRARY})
    set(MIRA_HAVE_CUDA ON)
    message(STATUS "mira: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}, NCCL ${NCCL_LIBRARY})")
  elseif(MIRA_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MIRA_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER or CUDACXX)")
  else()
    message(STATUS "mira: CUDA backend OFF (nvcc not found)")
  endif()
endif()
