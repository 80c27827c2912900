# shmtool.1: generated from `shmtool --help` and `--version` by help2man
# (Debian package help2man), with the sections of cmake/shmtool.h2m, and
# installed to share/man/man1. Without help2man the page is skipped, saying so.
find_program(SHMRING_HELP2MAN help2man)
if(SHMRING_HELP2MAN)
  set(_shmtool_man ${CMAKE_CURRENT_BINARY_DIR}/shmtool.1)
  add_custom_command(OUTPUT ${_shmtool_man}
    COMMAND ${SHMRING_HELP2MAN} --no-info --no-discard-stderr --section=1
            --name "inspect, verify, reset and feed shmring rings in POSIX shared memory"
            --include ${PROJECT_SOURCE_DIR}/cmake/shmtool.h2m --output ${_shmtool_man} $<TARGET_FILE:shmtool>
    DEPENDS shmtool ${PROJECT_SOURCE_DIR}/cmake/shmtool.h2m
    COMMENT "Generating shmtool.1 (help2man)"
    VERBATIM)
  add_custom_target(shmtool_man ALL DEPENDS ${_shmtool_man})
  install(FILES ${_shmtool_man} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "help2man not found: shmtool.1 is not built (apt-get install help2man)")
endif()
