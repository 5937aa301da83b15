package dev.jtune.infer;

import org.bytedeco.pytorch.Device;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;

/**
 * One call captured as a CUDA graph and replayed with one launch ({@link StaticDecodeStep}'s decode step).
 *
 * <p>The 2.10.0-1.5.13 preset binds no {@code at::cuda::CUDAGraph} (its {@code MempoolId_t} also comes out as the
 * wrong pair type, so a graph-private allocator pool cannot be set up), so this drives the CUDA runtime itself:
 * the call runs once eagerly (warm-up: the caching allocator then holds the blocks the call needs, since cudaMalloc is
 * not allowed while capturing), then runs again on a side stream from LibTorch's pool between
 * {@code cudaStreamBeginCapture} (thread-local mode) and {@code cudaStreamEndCapture}, and the graph is instantiated.
 * A replay launches it on LibTorch's current stream. The runtime's classes are in {@code org.bytedeco:cuda}, on the
 * class path only in GPU builds, so they are reached by reflection; any failure gives null and the caller stays
 * eager ({@link #lastFailure} says why).
 *
 * <p>Caveat, without a private pool: the temporaries the captured call freed go back to the caching allocator and
 * may be handed to tensors made between replays, which a replay then overwrites. The decode loop consumes each
 * step's output (the argmax) before the next replay and keeps nothing else on the device between steps;
 * the GPU test (CudaGraphDecodeGpuTest) checks many replayed steps against eager ones.
 */
final class CudaGraph implements AutoCloseable {
    private static volatile String lastFailure = "none";
    private static final int CAPTURE_MODE_THREAD_LOCAL = 1;   // cudaStreamCaptureModeThreadLocal

    private final Class<?> rt;
    private final byte deviceIndex;
    private Object graph;   // CUgraph_st
    private Object exec;    // CUgraphExec_st

    private CudaGraph(Class<?> rt, byte deviceIndex, Object graph, Object exec) {
        this.rt = rt;
        this.deviceIndex = deviceIndex;
        this.graph = graph;
        this.exec = exec;
    }

    /** Why the last capture gave null. */
    static String lastFailure() {
        return lastFailure;
    }

    /** Runs {@code body} eagerly, then captures it; null (the body having run once) when capturing is not possible. */
    static CudaGraph capture(Device device, Runnable body) {
        body.run();   // the step for this token, and the warm-up
        try {
            Class<?> tc = Class.forName("org.bytedeco.pytorch.global.torch_cuda");
            Class<?> rt = Class.forName("org.bytedeco.cuda.global.cudart");
            Class<?> streamT = Class.forName("org.bytedeco.cuda.cudart.CUstream_st");
            Class<?> graphT = Class.forName("org.bytedeco.cuda.cudart.CUgraph_st");
            Class<?> execT = Class.forName("org.bytedeco.cuda.cudart.CUgraphExec_st");
            byte index = device.has_index() ? device.index() : 0;
            check(rt.getMethod("cudaDeviceSynchronize").invoke(null), "cudaDeviceSynchronize");
            Object side = tc.getMethod("getStreamFromPool", boolean.class, byte.class).invoke(null, false, index);
            Class<?> guardT = Class.forName("org.bytedeco.pytorch.cuda.CUDAStreamGuard");
            Object guard = guardT.getConstructor(side.getClass()).newInstance(side);
            Object g = graphT.getConstructor().newInstance();
            Throwable failure = null;
            int endRc;
            try {
                Object cuStream = side.getClass().getMethod("stream").invoke(side);
                check(rt.getMethod("cudaStreamBeginCapture", streamT, int.class).invoke(null, cuStream, CAPTURE_MODE_THREAD_LOCAL),
                        "cudaStreamBeginCapture");
                try {
                    body.run();
                } catch (Throwable t) {
                    failure = t;
                }
                endRc = (Integer) rt.getMethod("cudaStreamEndCapture", streamT, graphT).invoke(null, cuStream, g);
            } finally {
                ((org.bytedeco.javacpp.Pointer) guard).close();   // the current stream is restored
            }
            if (failure != null) throw failure;
            if (endRc != 0) throw new IllegalStateException("cudaStreamEndCapture returned " + endRc);
            Object exec = execT.getConstructor().newInstance();
            check(rt.getMethod("cudaGraphInstantiate", execT, graphT, long.class).invoke(null, exec, g, 0L), "cudaGraphInstantiate");
            return new CudaGraph(rt, index, g, exec);
        } catch (Throwable t) {
            Throwable cause = t instanceof InvocationTargetException ite && ite.getCause() != null ? ite.getCause() : t;
            lastFailure = cause.getClass().getSimpleName() + ": " + cause.getMessage();
            return null;
        }
    }

    /** Launches the graph on LibTorch's current stream of the device. */
    void replay() {
        try {
            Class<?> tc = Class.forName("org.bytedeco.pytorch.global.torch_cuda");
            Object current = tc.getMethod("getCurrentCUDAStream", byte.class).invoke(null, deviceIndex);
            Object cuStream = current.getClass().getMethod("stream").invoke(current);
            Method launch = rt.getMethod("cudaGraphLaunch", exec.getClass(), cuStream.getClass());
            check(launch.invoke(null, exec, cuStream), "cudaGraphLaunch");
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("CUDA graph replay: " + e, e);
        }
    }

    private static void check(Object rc, String what) {
        if (rc instanceof Integer i && i != 0) throw new IllegalStateException(what + " returned cudaError " + i);
    }

    @Override
    public void close() {
        try {
            if (exec != null) rt.getMethod("cudaGraphExecDestroy", exec.getClass()).invoke(null, exec);
            if (graph != null) rt.getMethod("cudaGraphDestroy", graph.getClass()).invoke(null, graph);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("CUDA graph close: " + e, e);
        } finally {
            exec = graph = null;
        }
    }
}
