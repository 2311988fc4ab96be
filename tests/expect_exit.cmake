# Runs CMD with ARGS and fails unless it exits with WANT and prints an error on stderr.
execute_process(COMMAND ${CMD} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL WANT)
  message(FATAL_ERROR "expected exit ${WANT}, got ${rc}\nstdout: ${out}\nstderr: ${err}")
endif()
if(err STREQUAL "")
  message(FATAL_ERROR "expected an error message on stderr, got none")
endif()
message(STATUS "exit ${rc} as expected: ${err}")
