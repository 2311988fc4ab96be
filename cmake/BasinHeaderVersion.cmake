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

# basin_header_string(<include-dirs> <header> <macro> <out-var>): the string in
# `#define <macro> "..."` of the first <header> found under <include-dirs> (hwloc's
# HWLOC_VERSION in hwloc/autogen/config.h).
function(basin_header_string dirs header macro out)
  set(value "")
  foreach(dir IN LISTS dirs)
    if(EXISTS "${dir}/${header}")
      file(STRINGS "${dir}/${header}" lines REGEX "^#define ${macro} \"")
      string(REGEX MATCH "\"([^\"]*)\"" _ "${lines}")
      set(value "${CMAKE_MATCH_1}")
      break()
    endif()
  endforeach()
  set(${out} "${value}" PARENT_SCOPE)
endfunction()
