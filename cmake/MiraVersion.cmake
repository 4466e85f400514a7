# Code version for --version and provenance: the git revision at configure time (+dirty flag).
execute_process(COMMAND git describe --always --dirty --abbrev=12
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR} OUTPUT_VARIABLE MIRA_GIT_REVISION
  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT MIRA_GIT_REVISION)
  set(MIRA_GIT_REVISION "unknown")
endif()
