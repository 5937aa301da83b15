// JNI entry points of dev.jtune.kernels.KernelNative: plain JNI, one function per C ABI launcher.
// Pointers travel as jlong addresses (LibTorch's data_ptr, LibTorch's current cudaStream_t); the
// Java side loads this library through JavaCPP's Loader (extraction from the jar, caching).
#include <jni.h>
#include <stdint.h>
#include "jtune_kernels.h"

#define P(x) ((void *) (intptr_t) (x))
#define S(x) ((cudaStream_t) (intptr_t) (x))
#define FN(name) JNIEXPORT jint JNICALL Java_dev_jtune_kernels_KernelNative_##name

extern "C" {

FN(abiVersion)(JNIEnv *, jclass) { return jtk_abi_version(); }

JNIEXPORT jstring JNICALL Java_dev_jtune_kernels_KernelNative_lastError(JNIEnv *env, jclass) {
    return env->NewStringUTF(jtk_last_error());
}

// the count, or -status on failure
FN(deviceCount)(JNIEnv *, jclass) {
    int n = 0;
    jtk_status s = jtk_device_count(&n);
    return s == JTK_OK ? n : -(jint) s;
}

FN(setDevice)(JNIEnv *, jclass, jint device) { return jtk_set_device(device); }

FN(rmsnormForward)(JNIEnv *, jclass, jlong y, jlong rstd, jlong x, jlong w, jlong rows, jlong dim, jfloat eps,
                   jint dtype, jlong stream) {
    return jtk_rmsnorm_forward(P(y), (float *) P(rstd), P(x), P(w), rows, dim, eps, (jtk_dtype) dtype, S(stream));
}

JNIEXPORT jlong JNICALL Java_dev_jtune_kernels_KernelNative_rmsnormBackwardScratch(JNIEnv *, jclass, jlong rows, jlong dim) {
    return jtk_rmsnorm_backward_scratch(rows, dim);
}

FN(rmsnormBackward)(JNIEnv *, jclass, jlong dx, jlong dw, jlong scratch, jlong dy, jlong x, jlong w, jlong rstd,
                    jlong rows, jlong dim, jint dtype, jlong stream) {
    return jtk_rmsnorm_backward(P(dx), P(dw), (float *) P(scratch), P(dy), P(x), P(w), (const float *) P(rstd),
                                rows, dim, (jtk_dtype) dtype, S(stream));
}

FN(rope)(JNIEnv *, jclass, jlong out, jlong os0, jlong os1, jlong os2, jlong x, jlong xs0, jlong xs1, jlong xs2,
         jlong cos, jlong sin, jlong cs0, jlong cs1, jlong b, jlong h, jlong t, jlong hd, jlong bc,
         jboolean backward, jint dtype, jlong stream) {
    int64_t os[3] = {os0, os1, os2}, xs[3] = {xs0, xs1, xs2}, cs[2] = {cs0, cs1};
    return jtk_rope(P(out), os, P(x), xs, P(cos), P(sin), cs, b, h, t, hd, bc, backward ? 1 : 0,
                    (jtk_dtype) dtype, S(stream));
}

FN(swigluForward)(JNIEnv *, jclass, jlong y, jlong gate, jlong up, jlong n, jint dtype, jlong stream) {
    return jtk_swiglu_forward(P(y), P(gate), P(up), n, (jtk_dtype) dtype, S(stream));
}

FN(swigluBackward)(JNIEnv *, jclass, jlong dgate, jlong dup, jlong dy, jlong gate, jlong up, jlong n, jint dtype,
                   jlong stream) {
    return jtk_swiglu_backward(P(dgate), P(dup), P(dy), P(gate), P(up), n, (jtk_dtype) dtype, S(stream));
}

FN(crossEntropy)(JNIEnv *, jclass, jlong loss, jlong logits, jlong targets, jlong rows, jlong vocab, jlong ld,
                 jlong ignoreIndex, jfloat scale, jint dtype, jlong stream) {
    return jtk_cross_entropy((float *) P(loss), P(logits), (const int64_t *) P(targets), rows, vocab, ld, ignoreIndex,
                             scale, (jtk_dtype) dtype, S(stream));
}

FN(dequantize4bit)(JNIEnv *, jclass, jlong out, jlong packed, jlong absmax, jlong qabsmax, jlong nestedAbsmax,
                   jlong nestedMap, jfloat offset, jlong nestedBlocksize, jlong quantMap, jlong n, jlong blocksize,
                   jint dtype, jlong stream) {
    return jtk_dequantize_4bit(P(out), (const uint8_t *) P(packed), (const float *) P(absmax), (const uint8_t *) P(qabsmax),
                               (const float *) P(nestedAbsmax), (const float *) P(nestedMap), offset, nestedBlocksize,
                               (const float *) P(quantMap), n, blocksize, (jtk_dtype) dtype, S(stream));
}

}  // extern "C"
