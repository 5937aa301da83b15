// Library-wide functions of libjtunecpu.so: the ABI version and the instruction set the kernels picked.
#include "jtune_cpu.h"

extern "C" int jtc_abi_version(void) { return JTC_ABI_VERSION; }

extern "C" const char *jtc_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512f";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2+fma";
    return "generic";
}
