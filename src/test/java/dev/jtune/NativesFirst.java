package dev.jtune;

import dev.jtune.util.LibTorchNatives;
import org.junit.platform.launcher.LauncherSession;
import org.junit.platform.launcher.LauncherSessionListener;

/**
 * Loads the preset's LibTorch before any test class touches a LibTorch class, as jtune's Main does before any
 * command: otherwise a test JVM on a fresh JavaCPP cache would pick up a system LibTorch from the linker path
 * (see {@link LibTorchNatives}). Registered in META-INF/services for the JUnit Platform launcher.
 */
public final class NativesFirst implements LauncherSessionListener {
    @Override
    public void launcherSessionOpened(LauncherSession session) {
        LibTorchNatives.ensureLoaded();
    }
}
