# Third-party libraries, all from Debian's packages (scripts/install.sh installs them).
# Required ones stop the configure step with the Debian package to install; optional ones switch
# a part of basin off, and the configure summary says so.
find_package(PkgConfig REQUIRED)

find_package(nlohmann_json 3.10 REQUIRED)              # nlohmann-json3-dev
find_package(Boost 1.74 REQUIRED)                       # libboost-graph-dev (header-only BGL)
pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc)  # libhwloc-dev
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
