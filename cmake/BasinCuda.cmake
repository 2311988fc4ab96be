# CUDA is detected, never assumed. The toolkit at /usr/local/cuda is used when nvcc is not on
# PATH; without it every CUDA part is skipped and the rest of basin builds and tests as usual.
set(BASIN_HAVE_CUDA OFF)
if(BASIN_ENABLE_CUDA)
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # A100 and H100/H200: the GPUs basin's measurements are taken on.
      set(CMAKE_CUDA_ARCHITECTURES 80 90)
    endif()
    # CMake 3.25 does not know nvcc's C++20 flag; the .cu files need only C++17.
    set(CMAKE_CUDA_STANDARD 17)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(BASIN_HAVE_CUDA ON)
  endif()
endif()
