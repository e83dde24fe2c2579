# Finds Debian's MLIR 19 and loads only its TableGen/lit helpers. We build our own
# targets with plain add_library/add_executable and do not include
# HandleLLVMOptions: it would impose -fno-exceptions on the whole tree, and the
# MLIR-free parts (runtime, config reader) use exceptions internally.
find_package(MLIR REQUIRED CONFIG HINTS /usr/lib/llvm-19/lib/cmake/mlir)
message(STATUS "Using MLIR ${LLVM_PACKAGE_VERSION} from ${MLIR_DIR}")

set(LLVM_RUNTIME_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/bin)
set(LLVM_LIBRARY_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/lib)
set(MLIR_BINARY_DIR ${CMAKE_BINARY_DIR})
list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
include(TableGen)
include(AddLLVM)
include(AddMLIR)
include_directories(SYSTEM ${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
find_package(Python3 REQUIRED COMPONENTS Interpreter)

# libMLIR.so (one shared library; small binaries, fast links, no duplicate
# static registrations).
set(HALO_MLIR_LIBS MLIR LLVM)

# Applied to every target that includes MLIR headers.
function(halo_mlir_target target)
  separate_arguments(_defs NATIVE_COMMAND "${LLVM_DEFINITIONS}")
  target_compile_options(${target} PRIVATE ${_defs} -Wall -Wno-deprecated-declarations)
  target_link_libraries(${target} PUBLIC ${HALO_MLIR_LIBS})
  target_link_directories(${target} PUBLIC ${LLVM_LIBRARY_DIR})
  set_target_properties(${target} PROPERTIES BUILD_RPATH "${LLVM_LIBRARY_DIR}"
                                             INSTALL_RPATH "${LLVM_LIBRARY_DIR}")
endfunction()
