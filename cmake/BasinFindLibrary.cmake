# basin_find_library(<name> HEADERS <h>... LIBRARY <lib> PACKAGE <debian-package>)
# An imported target basin::<name> for a C library found by its headers and its library file,
# for the libraries whose pkg-config files cannot be trusted everywhere basin builds: the GPU
# machines may have no pkg-config at all, and there Debian's builds are carried under another
# prefix (shared/device), where Debian's .pc files still point at /usr. find_path and
# find_library follow CMAKE_PREFIX_PATH and the multiarch directories, so one lookup serves both.
# A missing library stops the configure step naming the Debian package to install. Each header's
# directory lands in the target's include path (hwloc keeps one header under the multiarch
# directory) and in BASIN_<name>_INCLUDE_DIRS.
function(basin_find_library name)
  cmake_parse_arguments(arg "" "LIBRARY;PACKAGE" "HEADERS" ${ARGN})
  set(dirs "")
  foreach(header IN LISTS arg_HEADERS)
    string(MAKE_C_IDENTIFIER "BASIN_${name}_${header}" var)
    find_path(${var} "${header}")
    if(NOT ${var})
      message(FATAL_ERROR "${name}: header ${header} not found: install ${arg_PACKAGE}")
    endif()
    list(APPEND dirs "${${var}}")
  endforeach()
  list(REMOVE_DUPLICATES dirs)
  find_library(BASIN_${name}_LIBRARY "${arg_LIBRARY}")
  if(NOT BASIN_${name}_LIBRARY)
    message(FATAL_ERROR "${name}: library ${arg_LIBRARY} not found: install ${arg_PACKAGE}")
  endif()
  add_library(basin::${name} UNKNOWN IMPORTED GLOBAL)
  set_target_properties(basin::${name} PROPERTIES IMPORTED_LOCATION "${BASIN_${name}_LIBRARY}"
                        INTERFACE_INCLUDE_DIRECTORIES "${dirs}")
  set(BASIN_${name}_INCLUDE_DIRS "${dirs}" PARENT_SCOPE)
endfunction()
