// JNI entry points of dev.jtune.kernels.CpuKernelNative: plain JNI, one function per C ABI function of
// jtune_cpu.h. Pointers travel as jlong addresses (LibTorch's data_ptr); the Java side loads this library through
// JavaCPP's Loader (extraction from the jar, caching).
#include <jni.h>
#include <stdint.h>
#include <stdlib.h>
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

JNIEXPORT jint JNICALL Java_dev_jtune_kernels_CpuKernelNative_decodeAttention(
        JNIEnv *, jclass, jint isa, jlong q, jlong qsb, jlong qsh, jlong k, jlong ksb, jlong ksh, jlong kss, jlong v,
        jlong vsb, jlong vsh, jlong vss, jlong mask, jlong msb, jlong out, jlong osb, jlong osh, jlong batch, jlong heads,
        jlong kvHeads, jlong keys, jlong headDim, jfloat scale, jlong p0, jlong p1) {
    jtc_decode_attention_args a = {F(q), qsb, qsh, F(k), ksb, ksh, kss, F(v), vsb, vsh, vss,
                                   (const unsigned char *) (intptr_t) mask, msb, F(out), osb, osh,
                                   batch, heads, kvHeads, keys, headDim, scale};
    float stack[4096];                                 // the scores of one (b, h) pair; longer contexts on the heap
    float *scores = keys <= 4096 ? stack : (float *) malloc(sizeof(float) * (size_t) keys);
    if (scores == nullptr) return JTC_ERR_ARG;
    jint st = jtc_decode_attention_f32(isa, &a, p0, p1, scores);
    if (scores != stack) free(scores);
    return st;
}

}  // extern "C"
