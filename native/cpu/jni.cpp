// JNI entry points of dev.jtune.kernels.CpuKernelNative: plain JNI, one function per C ABI function of
// jtune_cpu.h. Pointers travel as jlong addresses (LibTorch's data_ptr); the Java side loads this library through
// JavaCPP's Loader (extraction from the jar, caching).
#include <jni.h>
#include <stdint.h>
#include "jtune_cpu.h"

#define F(x) ((float *) (intptr_t) (x))

extern "C" {

JNIEXPORT jint JNICALL Java_dev_jtune_kernels_CpuKernelNative_abiVersion(JNIEnv *, jclass) { return jtc_abi_version(); }

JNIEXPORT jstring JNICALL Java_dev_jtune_kernels_CpuKernelNative_isa(JNIEnv *env, jclass) {
    return env->NewStringUTF(jtc_isa());
}

JNIEXPORT jint JNICALL Java_dev_jtune_kernels_CpuKernelNative_matvec(JNIEnv *, jclass, jint isa, jlong w, jlong ldw,
                                                                     jlong x, jlong bias, jlong y, jlong rows, jlong d) {
    return jtc_matvec_f32(isa, F(w), ldw, F(x), F(bias), F(y), rows, d);
}

JNIEXPORT jint JNICALL Java_dev_jtune_kernels_CpuKernelNative_linearRows(JNIEnv *, jclass, jint isa, jlong w, jlong ldw,
                                                                         jlong x, jlong ldx, jlong rows, jlong bias,
                                                                         jlong y, jlong ldy, jlong n, jlong d) {
    return jtc_linear_rows_f32(isa, F(w), ldw, F(x), ldx, rows, F(bias), F(y), ldy, n, d);
}

}  // extern "C"
