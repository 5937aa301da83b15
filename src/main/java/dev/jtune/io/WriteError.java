package dev.jtune.io;

import dev.jtune.util.UserError;

import java.io.IOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;

/**
 * A file jtune could not write (a full disk, a missing permission, a path under a regular file) is a problem of
 * the machine or of the paths the user chose, not a bug: a {@link UserError} (exit 2) that names the file and
 * the operating system's reason, e.g. {@code "run/metrics.jsonl: cannot write the metrics log: No space left on device"}.
 */
public final class WriteError {
    private WriteError() {}

    /** {@code "FILE: cannot write WHAT: REASON"}, keeping {@code e} as the cause. */
    public static UserError writing(Path file, String what, IOException e) {
        return new UserError(file + ": cannot write " + what + ": " + reason(e), e);
    }

    /** {@code "DIR: cannot create WHAT: REASON"}, keeping {@code e} as the cause. */
    public static UserError creating(Path dir, String what, IOException e) {
        return new UserError(dir + ": cannot create " + what + ": " + reason(e), e);
    }

    /**
     * The operating system's words for {@code e}. Java's file-system exceptions carry the path as their message and
     * the reason (often null) apart; the path is already in our message, so only the reason is kept.
     */
    public static String reason(IOException e) {
        if (e instanceof FileSystemException f) {
            if (f.getReason() != null) return f.getReason() + (f.getFile() != null ? " (" + f.getFile() + ")" : "");
            if (e instanceof NoSuchFileException) return "no such file or directory: " + f.getFile();
            if (e instanceof AccessDeniedException) return "permission denied: " + f.getFile();
            if (e instanceof NotDirectoryException) return "not a directory: " + f.getFile();
            if (e instanceof java.nio.file.FileAlreadyExistsException) return "a file is in the way: " + f.getFile();
        }
        return e.getMessage() != null ? e.getMessage() : "an I/O error";
    }
}
