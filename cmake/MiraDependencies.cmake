# Finds every host dependency; each failure names the Debian package that provides it
# (scripts/setup.sh installs them all).
find_package(MPI REQUIRED COMPONENTS C CXX)
find_package(OpenMP REQUIRED COMPONENTS CXX)

set(BLA_VENDOR OpenBLAS)
find_package(BLAS)
if(NOT BLAS_FOUND)
  message(FATAL_ERROR "OpenBLAS not found: install libopenblas-openmp-dev (scripts/setup.sh). "
                      "The reference BLAS is not accepted: it is about 10x slower.")
endif()
find_path(MIRA_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-openmp)
if(NOT MIRA_CBLAS_INCLUDE_DIR)
  message(FATAL_ERROR "cblas.h not found: install libopenblas-openmp-dev (scripts/setup.sh)")
endif()
add_library(mira_blas INTERFACE)
target_link_libraries(mira_blas INTERFACE ${BLAS_LIBRARIES})
target_include_directories(mira_blas INTERFACE ${MIRA_CBLAS_INCLUDE_DIR})

set(HDF5_PREFER_PARALLEL ON)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR "HDF5 at ${HDF5_INCLUDE_DIRS} is not built with MPI-IO (HDF5_IS_PARALLEL is false). "
                      "mira_hpc writes checkpoints collectively and needs parallel HDF5: "
                      "install libhdf5-openmpi-dev (scripts/setup.sh) or point HDF5_ROOT at a parallel build.")
endif()
add_library(mira_hdf5 INTERFACE)
target_link_libraries(mira_hdf5 INTERFACE ${HDF5_C_LIBRARIES} MPI::MPI_C)
target_include_directories(mira_hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS})
# The Debian default API mapping is 1.8: name the API level explicitly, code uses numbered calls.
target_compile_definitions(mira_hdf5 INTERFACE H5_USE_110_API ${HDF5_C_DEFINITIONS})

find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(nlohmann_json 3.10 REQUIRED)

find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)

if(MIRA_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
