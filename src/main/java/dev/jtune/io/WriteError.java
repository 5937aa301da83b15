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
        return new UserError(file + ": cannot write " + what + ": " + reason(e, file), e);
    }

    /** {@code "DIR: cannot create WHAT: REASON"}, keeping {@code e} as the cause. */
    public static UserError creating(Path dir, String what, IOException e) {
        return new UserError(dir + ": cannot create " + what + ": " + reason(e, dir), e);
    }

    /**
     * The operating system's words for {@code e}. Java's file-system exceptions carry the path as their message and
     * the reason (often null) apart; the path is already in our message, so only the reason is kept.
     */
    public static String reason(IOException e) {
        return reason(e, null);
    }

    /** As {@link #reason(IOException)}, leaving out the exception's path when it is {@code named} (already in the message). */
    static String reason(IOException e, Path named) {
        if (e instanceof FileSystemException f) {
            String where = f.getFile() == null || (named != null && f.getFile().equals(named.toString())) ? "" : f.getFile();
            if (f.getReason() != null) return f.getReason() + (where.isEmpty() ? "" : " (" + where + ")");
            String what = e instanceof NoSuchFileException ? "no such file or directory"
                    : e instanceof AccessDeniedException ? "permission denied"
                    : e instanceof NotDirectoryException ? "not a directory"
                    : e instanceof java.nio.file.FileAlreadyExistsException ? "a file is in the way" : null;
            if (what != null) return what + (where.isEmpty() ? "" : ": " + where);
        }
        return e.getMessage() != null ? e.getMessage() : "an I/O error";
    }
}
