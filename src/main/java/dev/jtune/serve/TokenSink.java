package dev.jtune.serve;

/** Where a request's output goes as the batcher produces it; called on the batcher's thread, so it must not block. */
interface TokenSink {
    /** New text of the completion (stop strings already cut). */
    void text(String delta);

    /** The end: {@code error} is null on success. Called exactly once. */
    void finished(Sequence.Outcome outcome);
}
