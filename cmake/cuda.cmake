# CUDA backend (src/backends/cuda/, gpu/README.md), included by the top-level CMakeLists.txt right
# after the `bitnet` library is defined.
#
#   -DBITNET_CUDA=AUTO (default)  build it when a working nvcc is found: CMAKE_CUDA_COMPILER, $CUDACXX,
#                                 nvcc on PATH, or /usr/local/cuda/bin/nvcc
#   -DBITNET_CUDA=ON              the same, but no nvcc is a configure error
#   -DBITNET_CUDA=OFF             never
#
# Enabled: the .cu files become an object library whose objects go into libbitnet.a, bitnet links
# CUDA::cudart and defines BITNET_WITH_CUDA=1 for itself and its users. Disabled: nothing with
# device code is compiled and nothing new is linked; device_unavailable.cpp provides cuda::probe().
# The host-only layout/repack code (gpu_layout.cpp) is compiled in every build so that its tests
# run without a GPU, and so is offload.cpp (-ngl: host bookkeeping; without the backend it only
# refuses). BITNET_ONLY_MODULES builds leave all of it out (offload.cpp excepted when they include
# the model module).

set(BITNET_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO (when nvcc is found), ON or OFF")
set_property(CACHE BITNET_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${BITNET_CUDA}" bitnet_cuda_mode)
if(NOT bitnet_cuda_mode MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "BITNET_CUDA must be AUTO, ON or OFF (got '${BITNET_CUDA}')")
endif()

set(bitnet_cuda_dir ${CMAKE_SOURCE_DIR}/src/backends/cuda)

if(BITNET_ONLY_MODULES)
  # src/backends/cuda is not one of the one-level modules BITNET_ONLY_MODULES selects.
  if(bitnet_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "BITNET_CUDA=ON needs the whole library; unset BITNET_ONLY_MODULES")
  endif()
  if("model" IN_LIST BITNET_ONLY_MODULES)
    # The model refers to the -ngl offload, which in a build without the backend only refuses.
    target_sources(bitnet PRIVATE ${bitnet_cuda_dir}/offload.cpp ${bitnet_cuda_dir}/device_unavailable.cpp)
  endif()
  return()
endif()

target_sources(bitnet PRIVATE ${bitnet_cuda_dir}/gpu_layout.cpp)
# -ngl: the layer split, the memory estimate and (CUDA builds) the GPU forward pass; without the
# backend it only refuses (offload.h).
target_sources(bitnet PRIVATE ${bitnet_cuda_dir}/offload.cpp)
# Its reference of the device's float steps rounds every product on its own (no FMA contraction).
set_source_files_properties(${bitnet_cuda_dir}/gpu_layout.cpp PROPERTIES COMPILE_OPTIONS -ffp-contract=off)

# ---- is there a usable nvcc? --------------------------------------------------------------------
set(bitnet_cuda_enabled OFF)
if(bitnet_cuda_mode STREQUAL "AUTO" AND (CMAKE_CROSSCOMPILING OR BITNET_FUZZ OR BITNET_SANITIZE))
  message(STATUS "CUDA backend: off (AUTO skips it in cross, fuzzing and sanitizer builds; BITNET_CUDA=ON forces it)")
elseif(NOT bitnet_cuda_mode STREQUAL "OFF")
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    # nvcc on PATH first, then the toolkit's default location.
    find_program(BITNET_NVCC nvcc PATHS /usr/local/cuda/bin)
    mark_as_advanced(BITNET_NVCC)
    if(BITNET_NVCC)
      set(ENV{CUDACXX} ${BITNET_NVCC})
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)  # compiles a test program; leaves CMAKE_CUDA_COMPILER NOTFOUND if that fails
  if(CMAKE_CUDA_COMPILER)
    set(bitnet_cuda_enabled ON)
  elseif(bitnet_cuda_mode STREQUAL "ON")
    message(FATAL_ERROR "BITNET_CUDA=ON, but no working nvcc was found (looked at CMAKE_CUDA_COMPILER, "
                        "$CUDACXX, PATH and /usr/local/cuda/bin). Pass -DCMAKE_CUDA_COMPILER=/path/to/nvcc, "
                        "or -DBITNET_CUDA=OFF.")
  else()
    message(STATUS "CUDA backend: off (no working nvcc found)")
  endif()
else()
  message(STATUS "CUDA backend: off (BITNET_CUDA=OFF)")
endif()

if(NOT bitnet_cuda_enabled)
  target_sources(bitnet PRIVATE ${bitnet_cuda_dir}/device_unavailable.cpp)
  return()
endif()

# ---- the backend ------------------------------------------------------------------------------
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 80 90)  # A100, H100/H200: SASS for both, PTX for later GPUs
endif()
if(NOT CMAKE_CUDA_HOST_COMPILER)
  set(CMAKE_CUDA_HOST_COMPILER ${CMAKE_CXX_COMPILER})  # nvcc's host half: the project's C++ compiler
endif()
if(CCACHE_PROGRAM AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
  # CMake < 3.26 does not know nvcc's C++20 flag (nvcc has it since CUDA 12).
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION -std=c++20)
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION -std=c++20)
endif()
message(STATUS "CUDA backend: on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES})")

# CUDA::cudart (shared) is linked explicitly below. CMake's default would also add -lcudadevrt
# -lcudart_static to every C++ executable that links these objects, without their directory;
# cudadevrt is only for separable compilation, which is not used. (Targets created from here on,
# the test executables among them, start from this value.)
set(CMAKE_CUDA_RUNTIME_LIBRARY None)
set_target_properties(bitnet PROPERTIES CUDA_RUNTIME_LIBRARY None)

file(GLOB bitnet_cuda_sources CONFIGURE_DEPENDS ${bitnet_cuda_dir}/*.cu)
add_library(bitnet_cuda OBJECT ${bitnet_cuda_sources})
# The directory's add_compile_options are GCC flags nvcc rejects (-Wall, -Werror, -fsanitize…):
# start from none, and hand the warning flags to the host compiler.
set_property(TARGET bitnet_cuda PROPERTY COMPILE_OPTIONS "")
set_target_properties(bitnet_cuda PROPERTIES CUDA_RUNTIME_LIBRARY None)
set_target_properties(bitnet_cuda PROPERTIES CUDA_STANDARD 20 CUDA_STANDARD_REQUIRED ON CUDA_EXTENSIONS OFF)
set(bitnet_cuda_host_warnings -Wall,-Wextra)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  string(APPEND bitnet_cuda_host_warnings ",-Wno-restrict")
endif()
target_compile_options(bitnet_cuda PRIVATE -Xcompiler=${bitnet_cuda_host_warnings})
if(BITNET_WERROR)
  target_compile_options(bitnet_cuda PRIVATE --Werror=all-warnings -Xcompiler=-Werror)
endif()
target_include_directories(bitnet_cuda PRIVATE ${CMAKE_SOURCE_DIR}/src)
target_compile_definitions(bitnet_cuda PRIVATE BITNET_WITH_CUDA=1)
target_link_libraries(bitnet_cuda PRIVATE CUDA::cudart)  # its include directories

target_sources(bitnet PRIVATE $<TARGET_OBJECTS:bitnet_cuda>)
target_link_libraries(bitnet PUBLIC CUDA::cudart)
target_compile_definitions(bitnet PUBLIC BITNET_WITH_CUDA=1)
