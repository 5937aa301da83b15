package dev.jtune.distributed;

/**
 * A collective failed: another rank died, hung past {@code training.ddp_timeout}, or could not be reached. The message
 * names this rank, the collective and, where the store could tell, the rank that stopped. {@code jtune} exits with code
 * 1 and this message, without a stack trace: nothing is wrong with the experiment file, and the run resumes from its
 * last checkpoint.
 */
public final class DistributedFailure extends RuntimeException {
    public DistributedFailure(String message, Throwable cause) {
        super(message, cause);
    }
}
