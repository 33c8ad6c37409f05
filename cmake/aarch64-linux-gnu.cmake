# aarch64-linux-gnu.cmake — CMake toolchain file: tq for 64-bit ARM Linux,
# built on another Linux machine with the GNU cross compiler, its tests run
# under qemu-user (Debian/Ubuntu packages gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross, qemu-user or qemu-user-static):
#
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64 && ctest --test-dir build-aarch64
#
# scripts/cross-test-aarch64.sh does all of this. The target's libraries and
# headers are looked for only under /usr/aarch64-linux-gnu, so a host libhdf5
# is not taken for the target's (HDF5 input is left out unless an aarch64
# libhdf5 is there); CMakeLists.txt leaves out the Python-driven tests.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest (and add_custom_command) run target programs through this; -L points
# qemu at the target's dynamic loader and libc.
if(NOT CMAKE_CROSSCOMPILING_EMULATOR)
  set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-aarch64;-L;/usr/aarch64-linux-gnu")
endif()
