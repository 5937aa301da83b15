package dev.jtune.cli;

import dev.jtune.data.DataCache;
import picocli.CommandLine.Option;

/**
 * {@code --no-cache} for every command that prepares data (train, data, eval, lr-find, sweep): prepare the data
 * again, into a temporary directory, instead of mapping the tokenized-data cache, and write no cache entry.
 */
final class NoCacheOption {
    @Option(names = "--no-cache", description = "Prepare the data again instead of mapping the tokenized-data cache"
            + " (data.cache_dir), and write no cache entry.")
    boolean noCache;

    /** Runs {@code work} with the cache off when {@code --no-cache} was given. */
    void around(Runnable work) {
        if (!noCache) {
            work.run();
            return;
        }
        System.setProperty(DataCache.DISABLE_PROPERTY, "true");
        try {
            work.run();
        } finally {
            System.clearProperty(DataCache.DISABLE_PROPERTY);
        }
    }
}
