# basin_header_version(<header> <prefix> <out-var>): "MAJOR.MINOR.PATCH" from a header's
# `#define <prefix>MAJOR n` / MINOR / PATCH lines (nccl.h: NCCL_, dnnl_version.h: DNNL_VERSION_),
# for libraries found by header rather than by a CMake package.
function(basin_header_version header prefix out)
  file(STRINGS "${header}" lines REGEX "^#define ${prefix}(MAJOR|MINOR|PATCH) [0-9]+")
  set(parts "")
  foreach(part MAJOR MINOR PATCH)
    string(REGEX MATCH "${prefix}${part} ([0-9]+)" _ "${lines}")
    list(APPEND parts "${CMAKE_MATCH_1}")
  endforeach()
  list(JOIN parts "." version)
  set(${out} "${version}" PARENT_SCOPE)
endfunction()
