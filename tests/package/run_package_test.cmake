# ctest: installs the build tree into a fresh prefix (cmake --install) and configures, builds
# and runs tests/package against it. Variables: BUILD_DIR, SOURCE_DIR, WORK_DIR, GENERATOR,
# PREFIX_PATH (the CMAKE_PREFIX_PATH of the main build, e.g. a CUDA LibTorch).
file(REMOVE_RECURSE ${WORK_DIR})
function(check_step what)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
endfunction()
function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  check_step("${what}")
endfunction()
run_step("cmake --install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK_DIR}/prefix)
# Not through run_step: forwarding ${ARGN} would split the prefix list into separate
# arguments, and the consumer would find another LibTorch than the one diffuse was built with.
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package -B ${WORK_DIR}/build -G ${GENERATOR}
                        -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix;${PREFIX_PATH}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
check_step("configuring the consumer")
run_step("building the consumer" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run_step("running the consumer" ${WORK_DIR}/build/consumer)
file(REMOVE_RECURSE ${WORK_DIR})
