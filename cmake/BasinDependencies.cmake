# Third-party libraries, all from Debian's packages (scripts/install.sh installs them).
# Required ones stop the configure step with the Debian package to install; optional ones switch
# a part of basin off, and the configure summary says so.
find_package(nlohmann_json 3.10 REQUIRED)              # nlohmann-json3-dev
find_package(Boost 1.74 CONFIG REQUIRED)                # libboost-graph-dev (header-only BGL); CONFIG: CMake 4 dropped FindBoost
# hwloc by header and library (cmake/BasinFindLibrary.cmake says why not pkg-config).
basin_find_library(hwloc HEADERS hwloc.h hwloc/autogen/config.h LIBRARY hwloc
                   PACKAGE libhwloc-dev)
basin_header_string("${BASIN_hwloc_INCLUDE_DIRS}" hwloc/autogen/config.h HWLOC_VERSION HWLOC_VERSION)
find_package(CLI11 CONFIG REQUIRED)                     # libcli11-dev
find_package(Threads REQUIRED)

if(BASIN_BUILD_TESTS)
  find_package(Catch2 REQUIRED)                         # catch2 (v2 on Debian 12, v3 elsewhere)
  if(Catch2_VERSION VERSION_GREATER_EQUAL 3)
    set(BASIN_CATCH2_V3 ON)
  endif()
endif()
if(BASIN_BUILD_BENCHMARKS)
  find_package(benchmark QUIET)                         # libbenchmark-dev
endif()
