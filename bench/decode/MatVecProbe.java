import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.*;
import org.bytedeco.pytorch.global.torch;
import org.bytedeco.pytorch.global.torch.ScalarType;
import com.sun.jna.*;
import java.nio.file.*;

/**
 * (1, d) x (d, n) fp32 products on 24 distinct 4864 x 896 weights (cache-cold): torch.mv against torch.linear, one row
 * and eight, under each pair of (LibTorch intra-op threads, OpenBLAS threads), twice, in one process.
 *
 *   java -cp "$(cat target/decode-bench.cp):target/classes" bench/decode/MatVecProbe.java
 */
public class MatVecProbe {
    public interface OB extends com.sun.jna.Library { void openblas_set_num_threads(int n); int openblas_get_num_threads(); }
    interface Op { Tensor run(int l); }
    static final int L = 24;
    static double time(Op op, int reps) {
        for (int i = 0; i < L; i++) try (PointerScope s = new PointerScope()) { op.run(i); }
        long t0 = System.nanoTime();
        for (int r = 0; r < reps; r++) for (int i = 0; i < L; i++) try (PointerScope s = new PointerScope()) { op.run(i); }
        return (System.nanoTime() - t0) / 1e3 / reps / L;
    }
    public static void main(String[] a) throws Exception {
        NoGradGuard ng = new NoGradGuard();
        torch.get_num_threads();
        String lib = Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(s -> s.contains("libopenblas.so.0")).findFirst().get();
        lib = lib.substring(lib.indexOf('/'));
        OB ob = Native.load(lib, OB.class);
        System.out.println(lib + " openblas threads " + ob.openblas_get_num_threads());
        long d = 896, n = 4864;
        TensorOptions o = new TensorOptions().dtype(new ScalarTypeOptional(ScalarType.Float));
        Tensor[] w = new Tensor[L];
        for (int i = 0; i < L; i++) w[i] = torch.randn(new long[]{n, d}, o);
        double bytes = (double) n * d * 4;
        for (int round = 0; round < 2; round++)
        for (int[] cfg : new int[][]{{1,1},{2,1},{1,2},{2,2}}) {
            torch.set_num_threads(cfg[0]); ob.openblas_set_num_threads(cfg[1]);
            StringBuilder sb = new StringBuilder(String.format("torch %d openblas %d:", cfg[0], cfg[1]));
            Tensor x1 = torch.randn(new long[]{d}, o);
            sb.append(String.format(" mv %.1f GB/s", bytes / time(l -> torch.mv(w[l], x1), 4) / 1e3));
            for (int b : new int[]{1, 8}) {
                Tensor x = torch.randn(new long[]{b, d}, o);
                sb.append(String.format(" | B%d linear %.1f", b, bytes / time(l -> torch.linear(x, w[l]), 4) / 1e3));
            }
            System.out.println(sb);
        }
    }
}
