// Library-wide functions of libjtunecpu.so: the ABI version and the instruction set the kernels picked.
#include "common.h"

extern "C" int jtc_abi_version(void) { return JTC_ABI_VERSION; }

extern "C" const char *jtc_isa(void) {
    switch (jtc::best_isa()) {
        case JTC_ISA_AVX512: return "avx512f";
        case JTC_ISA_AVX2: return "avx2+fma";
        default: return "generic";
    }
}
