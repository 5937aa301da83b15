import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Two builds of jtune decoding in ONE process, alternating (the box is shared: only ratios measured side by side in one
 * process mean anything). Each build's classes load in their own class loader (LibTorch and the other jars once, in
 * the parent), load the model, and time greedy decode steps with {@link DecodeStepTimer}; rounds alternate A, B, A, B.
 *
 *   bench/decode/ab.sh MODEL_DIR CLASSES_A CLASSES_B [STEPS] [ROUNDS] [BATCHES]
 *
 * (ab.sh compiles this file and DecodeStepTimer.java into a scratch folder and runs it with the dependency class path.)
 */
public class DecodeAB {
    public static void main(String[] a) throws Exception {
        Path model = Path.of(a[0]);
        Path timerDir = Path.of(a[1]);
        String[] names = {"A", "B"};
        Path[] classes = {Path.of(a[2]), Path.of(a[3])};
        int steps = a.length > 4 ? Integer.parseInt(a[4]) : 16;
        int rounds = a.length > 5 ? Integer.parseInt(a[5]) : 3;
        int[] batches = Arrays.stream((a.length > 6 ? a[6] : "1,8").split(",")).mapToInt(Integer::parseInt).toArray();
        Method[] measure = new Method[2];
        for (int s = 0; s < 2; s++) {
            ClassLoader l = new ChildFirst(new URL[] {timerDir.toUri().toURL(), classes[s].toUri().toURL()}, DecodeAB.class.getClassLoader());
            Class<?> timer = Class.forName("DecodeStepTimer", true, l);
            if (s == 0) timer.getMethod("configure").invoke(null);
            timer.getMethod("load", Path.class).invoke(null, model);
            measure[s] = timer.getMethod("stepSeconds", int.class, int.class);
            measure[s].invoke(null, 1, 2);                                         // warm-up: JIT, first-call costs
        }
        System.out.printf(Locale.ROOT, "A = %s%nB = %s%nmodel %s, %d steps per run after a 16-token prompt, load %s%n", classes[0], classes[1], model, steps, load());
        for (int b : batches) {
            List<double[]> runs = new ArrayList<>();
            for (int r = 0; r < rounds; r++) {
                double[] t = new double[2], cpu = new double[2];
                for (int s = 0; s < 2; s++) {
                    double[] m = (double[]) measure[s].invoke(null, b, steps);
                    t[s] = m[0];
                    cpu[s] = m[1];
                }
                runs.add(t);
                System.out.printf(Locale.ROOT, "batch %d round %d: A %.1f ms/step (%.2f tokens/s, CPU %.1f ms), B %.1f ms/step (%.2f tokens/s, CPU %.1f ms), A/B time %.2f, load %s%n",
                        b, r + 1, t[0] * 1e3, b / t[0], cpu[0] * 1e3, t[1] * 1e3, b / t[1], cpu[1] * 1e3, t[0] / t[1], load());
            }
            double[] best = {Double.MAX_VALUE, Double.MAX_VALUE};
            for (double[] t : runs) for (int s = 0; s < 2; s++) best[s] = Math.min(best[s], t[s]);
            System.out.printf(Locale.ROOT, "batch %d best: A %.2f tokens/s, B %.2f tokens/s, B/A %.2f%n", b, b / best[0], b / best[1], best[0] / best[1]);
        }
    }

    static String load() throws Exception {
        return Files.readString(Path.of("/proc/loadavg")).trim();
    }

    /** Loads the timer and jtune's classes itself (each build gets its own copies); everything else from the parent. */
    static final class ChildFirst extends URLClassLoader {
        ChildFirst(URL[] urls, ClassLoader parent) {
            super(urls, parent);
        }

        @Override
        protected Class<?> loadClass(String name, boolean resolve) throws ClassNotFoundException {
            if (!name.startsWith("dev.jtune.") && !name.startsWith("DecodeStepTimer")) return super.loadClass(name, resolve);
            synchronized (getClassLoadingLock(name)) {
                Class<?> c = findLoadedClass(name);
                if (c == null) c = findClass(name);
                if (resolve) resolveClass(c);
                return c;
            }
        }
    }
}
