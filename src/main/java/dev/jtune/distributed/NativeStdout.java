package dev.jtune.distributed;

import com.sun.jna.Library;
import com.sun.jna.Native;
import com.sun.jna.Pointer;

import java.util.function.Supplier;

/**
 * Sends what native code prints to standard output while {@code work} runs to standard error instead.
 *
 * <p>Why: forming a Gloo process group prints "[Gloo] Rank 0 is connected to 1 peer ranks…" through C++'s
 * {@code std::cout}, and no LibTorch setting silences it. On rank 0 that line would land in front of
 * {@code jtune bench --json}'s document, or in a user's piped output. The file descriptor 1 is pointed at 2
 * (dup2) for the duration, C's stdio is flushed before it is restored, and Java's own System.out is flushed
 * first so nothing of ours moves. Without libc through JNA it runs {@code work} unchanged.
 */
final class NativeStdout {
    private NativeStdout() {}

    private interface CLibrary extends Library {
        int dup(int fd);

        int dup2(int from, int to);

        int close(int fd);

        int fflush(Pointer stream);
    }

    static <T> T toStderr(Supplier<T> work) {
        CLibrary libc;
        int saved;
        try {
            libc = Native.load("c", CLibrary.class);
            System.out.flush();
            libc.fflush(null);
            saved = libc.dup(1);
            if (saved < 0) return work.get();
            if (libc.dup2(2, 1) < 0) {
                libc.close(saved);
                return work.get();
            }
        } catch (Throwable t) {   // no libc through JNA (another OS): leave stdout alone
            return work.get();
        }
        try {
            return work.get();
        } finally {
            libc.fflush(null);
            libc.dup2(saved, 1);
            libc.close(saved);
        }
    }
}
