package dev.jtune.serve;

/**
 * An error answered in OpenAI's JSON shape, {@code {"error": {"message", "type", "param", "code"}}}, with its HTTP
 * status. Thrown by request parsing and admission; the server turns it into a response (never a stack trace).
 */
public final class ApiError extends RuntimeException {
    private final int status;
    private final String type;
    private final String param;
    private final String code;

    public ApiError(int status, String type, String param, String code, String message) {
        super(message, null, false, false);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400: a parameter is missing, of the wrong type or out of range; names the parameter. */
    public static ApiError badParam(String param, String message) {
        return new ApiError(400, "invalid_request_error", param, "invalid_value", param + ": " + message);
    }

    public static ApiError badRequest(String message) {
        return new ApiError(400, "invalid_request_error", null, null, message);
    }

    public static ApiError unauthorized() {
        return new ApiError(401, "invalid_request_error", null, "invalid_api_key",
                "Incorrect or missing API key: send it as 'Authorization: Bearer KEY'");
    }

    public static ApiError unknownModel(String model, Iterable<String> known) {
        return new ApiError(404, "invalid_request_error", "model", "model_not_found",
                "The model '" + model + "' does not exist; this server has " + String.join(", ", known));
    }

    public static ApiError notFound(String path) {
        return new ApiError(404, "invalid_request_error", null, "not_found", "No route " + path);
    }

    public static ApiError methodNotAllowed(String method, String path) {
        return new ApiError(405, "invalid_request_error", null, "method_not_allowed", method + " is not allowed on " + path);
    }

    public static ApiError tooLarge(long limit) {
        return new ApiError(413, "invalid_request_error", null, "request_too_large",
                "The request body is over the server's limit of " + limit + " bytes");
    }

    public static ApiError queueFull(int maxQueue) {
        return new ApiError(429, "rate_limit_error", null, "queue_full",
                "The server's queue is full (" + maxQueue + " requests waiting); retry later");
    }

    public static ApiError draining() {
        return new ApiError(503, "server_error", null, "draining", "The server is shutting down and accepts no new requests");
    }

    public static ApiError timeout(double seconds) {
        return new ApiError(504, "server_error", null, "timeout", "The request ran past the server's per-request timeout of " + seconds + " s");
    }

    public static ApiError internal() {
        return new ApiError(500, "server_error", null, "internal_error", "The server failed while generating; see its log");
    }

    public int status() {
        return status;
    }

    public String type() {
        return type;
    }

    public String param() {
        return param;
    }

    public String code() {
        return code;
    }
}
