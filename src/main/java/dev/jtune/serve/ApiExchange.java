package dev.jtune.serve;

/**
 * One HTTP request and its response, as the OpenAI protocol ({@link OpenAiApi}) sees them, free of any HTTP library:
 * {@link NettyHttpServer} implements it. Methods that write may be called from any thread (the batcher's included)
 * and must not block; writes after the client has gone are dropped.
 */
interface ApiExchange {
    String method();

    /** The path without the query string, e.g. {@code /v1/chat/completions}. */
    String path();

    /** The first value of a request header (case-insensitive name), or null. */
    String header(String name);

    /** The whole request body, or null when it was over the server's body limit (then it was read and discarded). */
    byte[] body();

    /** A complete response; {@code extraHeaders} are name, value pairs. Ends the exchange. */
    void respond(int status, String contentType, byte[] body, String... extraHeaders);

    /** Starts a 200 response of server-sent events (chunked); {@link #event} then sends each piece as it comes. */
    void startEvents();

    /** One piece of the event stream, sent at once. */
    void event(byte[] data);

    /** Ends the event stream (and the exchange). */
    void endEvents();

    /**
     * Runs {@code r} once if the client closes its connection before the response has ended (at once when it already
     * has): how a generation learns that nobody waits for it any more.
     */
    void onDisconnect(Runnable r);
}
