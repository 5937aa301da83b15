package dev.jtune.cli;

import sun.misc.Signal;
import sun.misc.SignalHandler;

import java.io.PrintStream;

/**
 * SIGTERM and SIGINT during {@code jtune train} and {@code jtune sweep}, as cluster schedulers send them before
 * preemption: the first asks the trainer (through {@link #requested}, its preemption source) to finish the current
 * step, write a checkpoint and exit 0; a second one exits at once. The handlers are in place only while a run trains;
 * closing restores the previous ones. The CLI installs them: the library never takes over a JVM's signals.
 *
 * <p>Java has no public API for signals; sun.misc.Signal (module jdk.unsupported, kept on purpose for
 * this use since JEP 260) is what JVM tools use. javac warns about it on every build; that is expected.
 */
final class SignalStop implements AutoCloseable {
    private volatile String requested;
    private final SignalHandler oldTerm;
    private final SignalHandler oldInt;

    private SignalStop(PrintStream out) {
        SignalHandler h = sig -> {
            String name = "SIG" + sig.getName();
            if (requested != null) {
                System.err.println("\n" + name + " again: exiting now, without a checkpoint");
                Runtime.getRuntime().halt(128 + sig.getNumber());
            }
            requested = name;
            out.println("\n" + name + ": finishing the current step, then writing a checkpoint (send it again to exit at once)");
        };
        this.oldTerm = handle("TERM", h);
        this.oldInt = handle("INT", h);
    }

    static SignalStop install(PrintStream out) {
        return new SignalStop(out);
    }

    private static SignalHandler handle(String name, SignalHandler h) {
        try {
            return Signal.handle(new Signal(name), h);
        } catch (IllegalArgumentException e) {   // the JVM reserves it (e.g. with -Xrs): no graceful stop for it
            return null;
        }
    }

    /** The signal that asked to stop ("SIGTERM"), or null. */
    String requested() {
        return requested;
    }

    @Override
    public void close() {
        if (oldTerm != null) Signal.handle(new Signal("TERM"), oldTerm);
        if (oldInt != null) Signal.handle(new Signal("INT"), oldInt);
    }
}
