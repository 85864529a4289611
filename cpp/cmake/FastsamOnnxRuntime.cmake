# Locate ONNX Runtime and define the imported target `fastsam::onnxruntime`.
#
# Tried in order (the first that is complete wins):
#   a) a release tree: -DONNXRUNTIME_ROOT=DIR (or the environment variable), with include/ and lib/;
#   b) a system install: find_package(onnxruntime CONFIG) -> onnxruntime::onnxruntime;
#   c) the library inside the `onnxruntime` / `onnxruntime-gpu` Python package of Python_EXECUTABLE
#      (onnxruntime/capi/libonnxruntime.so.<version>), with C/C++ headers from -DONNXRUNTIME_INCLUDE_DIR,
#      $FASTSAM_ORT_HEADERS_DIR, ~/.cache/fastsam/ort-headers (cpp/scripts/fetch_ort_headers.sh), or
#      /usr/include/onnxruntime (Debian 13's libonnxruntime-dev). With FASTSAM_FETCH_ORT_HEADERS=ON
#      (the default) the fetch script runs when no headers are found and apt-get is available.
#
# Without any: a FATAL_ERROR when FASTSAM_REQUIRE_ONNXRUNTIME is ON (the default outside `pip install`),
# else a warning and FASTSAM_ORT_SOURCE stays empty (the caller skips the runtime).
# Sets: FASTSAM_ORT_SOURCE (release|system|python), FASTSAM_ORT_LIBRARY (the real library file, or empty
# for a system install), FASTSAM_ORT_INCLUDE_DIR.

set(ONNXRUNTIME_ROOT "$ENV{ONNXRUNTIME_ROOT}" CACHE PATH "ONNX Runtime release tree (include/ and lib/)")
set(ONNXRUNTIME_INCLUDE_DIR "" CACHE PATH "Directory holding onnxruntime_cxx_api.h (for the Python-package library)")
option(FASTSAM_FETCH_ORT_HEADERS "Run cpp/scripts/fetch_ort_headers.sh when no ONNX Runtime headers are found" ON)

set(_fastsam_ort_help [=[
ONNX Runtime was not found. Provide ONE of:
  * a release tree:   -DONNXRUNTIME_ROOT=/path/to/onnxruntime-linux-x64-<ver>   (has include/ and lib/)
  * a system install: an onnxruntime CMake package (-DCMAKE_PREFIX_PATH=...), e.g. Debian 13's libonnxruntime-dev
  * the Python wheel: `pip install onnxruntime` into the Python that CMake uses (-DPython_EXECUTABLE=...)
    plus the C/C++ headers: run `cpp/scripts/fetch_ort_headers.sh` (Debian/Ubuntu; fetches libonnxruntime-dev
    headers into ~/.cache/fastsam/ort-headers) or pass -DONNXRUNTIME_INCLUDE_DIR=<dir with onnxruntime_cxx_api.h>.
  For `pip install .` the wheel comes from [build-system].requires; only the headers are needed.]=])

function(_fastsam_header_dir out)
  set(candidates ${ARGN})
  foreach(base IN LISTS candidates)
    if(base AND EXISTS "${base}")
      file(GLOB_RECURSE hits "${base}/onnxruntime_cxx_api.h")
      if(hits)
        list(GET hits 0 first)
        get_filename_component(dir "${first}" DIRECTORY)
        set(${out} "${dir}" PARENT_SCOPE)
        return()
      endif()
    endif()
  endforeach()
  set(${out} "" PARENT_SCOPE)
endfunction()

function(_fastsam_header_api_version include_dir out)
  file(STRINGS "${include_dir}/onnxruntime_c_api.h" line REGEX "^#define ORT_API_VERSION [0-9]+")
  string(REGEX REPLACE "^#define ORT_API_VERSION ([0-9]+).*" "\\1" version "${line}")
  set(${out} "${version}" PARENT_SCOPE)
endfunction()

function(_fastsam_make_imported library include_dir)
  add_library(fastsam::onnxruntime SHARED IMPORTED GLOBAL)
  set_target_properties(fastsam::onnxruntime PROPERTIES
    IMPORTED_LOCATION "${library}"
    IMPORTED_SONAME "libonnxruntime.so.1"
    INTERFACE_INCLUDE_DIRECTORIES "${include_dir}")
endfunction()

macro(fastsam_find_onnxruntime)
  set(FASTSAM_ORT_SOURCE "")
  set(FASTSAM_ORT_LIBRARY "")
  set(FASTSAM_ORT_INCLUDE_DIR "")

  # a) release tree
  if(ONNXRUNTIME_ROOT)
    _fastsam_header_dir(_ort_inc "${ONNXRUNTIME_ROOT}/include")
    find_library(_ort_lib NAMES onnxruntime PATHS "${ONNXRUNTIME_ROOT}/lib" "${ONNXRUNTIME_ROOT}/lib64" NO_DEFAULT_PATH)
    if(NOT _ort_inc OR NOT _ort_lib)
      message(FATAL_ERROR "ONNXRUNTIME_ROOT=${ONNXRUNTIME_ROOT} is not an ONNX Runtime release tree: "
                          "expected include/**/onnxruntime_cxx_api.h and lib/libonnxruntime.so.\n${_fastsam_ort_help}")
    endif()
    get_filename_component(_ort_real "${_ort_lib}" REALPATH)
    _fastsam_make_imported("${_ort_lib}" "${_ort_inc}")
    set(FASTSAM_ORT_SOURCE release)
    set(FASTSAM_ORT_LIBRARY "${_ort_real}")
    set(FASTSAM_ORT_INCLUDE_DIR "${_ort_inc}")
  endif()

  # b) system install
  if(NOT FASTSAM_ORT_SOURCE)
    find_package(onnxruntime CONFIG QUIET)
    if(onnxruntime_FOUND AND TARGET onnxruntime::onnxruntime)
      add_library(fastsam::onnxruntime INTERFACE IMPORTED GLOBAL)
      set_target_properties(fastsam::onnxruntime PROPERTIES INTERFACE_LINK_LIBRARIES onnxruntime::onnxruntime)
      get_target_property(_ort_inc onnxruntime::onnxruntime INTERFACE_INCLUDE_DIRECTORIES)
      set(FASTSAM_ORT_SOURCE system)
      set(FASTSAM_ORT_INCLUDE_DIR "${_ort_inc}")
    endif()
  endif()

  # c) the library of the onnxruntime Python package + separate headers
  if(NOT FASTSAM_ORT_SOURCE)
    if(NOT Python_EXECUTABLE)
      find_package(Python COMPONENTS Interpreter QUIET)
    endif()
    set(_ort_pkg "")
    if(Python_EXECUTABLE)
      execute_process(
        COMMAND "${Python_EXECUTABLE}" -c "import onnxruntime, os; print(os.path.dirname(onnxruntime.__file__)); print(onnxruntime.__version__)"
        OUTPUT_VARIABLE _ort_py_out ERROR_QUIET RESULT_VARIABLE _ort_py_rc OUTPUT_STRIP_TRAILING_WHITESPACE)
      if(_ort_py_rc EQUAL 0)
        string(REPLACE "\n" ";" _ort_py_out "${_ort_py_out}")
        list(GET _ort_py_out 0 _ort_pkg)
        list(GET _ort_py_out 1 _ort_py_version)
      endif()
    endif()
    set(_ort_lib "")
    if(_ort_pkg)
      file(GLOB _ort_libs "${_ort_pkg}/capi/libonnxruntime.so.[0-9]*")
      if(_ort_libs)
        list(SORT _ort_libs)
        list(GET _ort_libs -1 _ort_lib)
      endif()
    endif()
    if(_ort_lib)
      set(_ort_home "$ENV{HOME}")
      _fastsam_header_dir(_ort_inc "${ONNXRUNTIME_INCLUDE_DIR}" "$ENV{FASTSAM_ORT_HEADERS_DIR}"
                          "${_ort_home}/.cache/fastsam/ort-headers" "/usr/include/onnxruntime" "/usr/local/include/onnxruntime")
      if(NOT _ort_inc AND FASTSAM_FETCH_ORT_HEADERS)
        find_program(_fastsam_apt_get apt-get)
        find_program(_fastsam_dpkg dpkg)
        if(_fastsam_apt_get AND _fastsam_dpkg)
          message(STATUS "fastsam: fetching ONNX Runtime headers with cpp/scripts/fetch_ort_headers.sh")
          execute_process(COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/../scripts/fetch_ort_headers.sh"
                          OUTPUT_VARIABLE _ort_fetched RESULT_VARIABLE _ort_fetch_rc OUTPUT_STRIP_TRAILING_WHITESPACE)
          if(_ort_fetch_rc EQUAL 0)
            _fastsam_header_dir(_ort_inc "${_ort_fetched}")
          endif()
        endif()
      endif()
      if(_ort_inc)
        # Headers of API N work with any library >= 1.N; the reverse calls functions the library lacks.
        _fastsam_header_api_version("${_ort_inc}" _ort_api)
        string(REGEX MATCH "^1\\.([0-9]+)" _ort_minor_match "${_ort_py_version}")
        if(_ort_api AND CMAKE_MATCH_1 AND _ort_api GREATER CMAKE_MATCH_1)
          message(FATAL_ERROR "ONNX Runtime headers in ${_ort_inc} declare API ${_ort_api}, newer than the "
                              "onnxruntime ${_ort_py_version} library in ${_ort_pkg}; use headers of API <= ${CMAKE_MATCH_1}.")
        endif()
        # The wheel ships only libonnxruntime.so.<version>; give the linker and the loader the SONAME name.
        set(_ort_stage "${CMAKE_BINARY_DIR}/_onnxruntime/lib")
        file(MAKE_DIRECTORY "${_ort_stage}")
        file(CREATE_LINK "${_ort_lib}" "${_ort_stage}/libonnxruntime.so.1" SYMBOLIC)
        _fastsam_make_imported("${_ort_stage}/libonnxruntime.so.1" "${_ort_inc}")
        set(FASTSAM_ORT_SOURCE python)
        set(FASTSAM_ORT_LIBRARY "${_ort_lib}")
        set(FASTSAM_ORT_INCLUDE_DIR "${_ort_inc}")
      endif()
    endif()
  endif()

  if(NOT FASTSAM_ORT_SOURCE)
    if(FASTSAM_REQUIRE_ONNXRUNTIME)
      message(FATAL_ERROR "${_fastsam_ort_help}")
    endif()
    message(WARNING "${_fastsam_ort_help}\nfastsam_rt (the C++ runtime and its Python module) is NOT built.")
  else()
    message(STATUS "fastsam: ONNX Runtime from ${FASTSAM_ORT_SOURCE} (${FASTSAM_ORT_LIBRARY} ${FASTSAM_ORT_INCLUDE_DIR})")
  endif()
endmacro()
