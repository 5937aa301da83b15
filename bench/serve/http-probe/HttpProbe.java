import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Which HTTP server notices a client that closes its socket while a non-streaming answer is still pending (a long
 * generation), and how long each takes to start. One server per run:
 *   java -cp JARS:. HttpProbe jdk|jetty|netty
 * The handler reads the body and then answers nothing for 10 s, as `jtune serve` does while it generates; the client
 * sends a POST, waits 0.5 s and closes. Prints the start time (construct + bind + start) and whether, and how soon,
 * the server told the handler.
 */
public class HttpProbe {
    static final CompletableFuture<String> told = new CompletableFuture<>();

    public static void main(String[] args) throws Exception {
        long t0 = System.nanoTime();
        AutoCloseable server;
        int port;
        switch (args[0]) {
            case "jdk" -> {
                var s = com.sun.net.httpserver.HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 128);
                s.setExecutor(java.util.concurrent.Executors.newCachedThreadPool());
                s.createContext("/", ex -> {
                    ex.getRequestBody().readAllBytes();
                    // the JDK's API has no close notification: the only way to learn is a write that fails
                    long end = System.currentTimeMillis() + 10_000;
                    while (System.currentTimeMillis() < end && !told.isDone()) sleep(50);
                });
                s.start();
                server = () -> s.stop(0);
                port = s.getAddress().getPort();
            }
            case "jetty" -> {
                var s = new org.eclipse.jetty.server.Server();
                var c = new org.eclipse.jetty.server.ServerConnector(s);
                c.setHost("127.0.0.1");
                s.addConnector(c);
                s.setHandler(new org.eclipse.jetty.server.Handler.Abstract() {
                    @Override
                    public boolean handle(org.eclipse.jetty.server.Request req, org.eclipse.jetty.server.Response resp,
                                          org.eclipse.jetty.util.Callback cb) throws Exception {
                        org.eclipse.jetty.io.Content.Source.asString(req, StandardCharsets.UTF_8);
                        req.addFailureListener(t -> told.complete("Request failure listener: " + t));
                        // answered later from another thread, as a batcher would
                        new Thread(() -> {
                            long end = System.currentTimeMillis() + 10_000;
                            while (System.currentTimeMillis() < end && !told.isDone()) sleep(50);
                            org.eclipse.jetty.io.Content.Sink.write(resp, true, "done", cb);
                        }).start();
                        return true;
                    }
                });
                s.start();
                server = s::stop;
                port = c.getLocalPort();
            }
            case "netty" -> {
                var boss = new io.netty.channel.nio.NioEventLoopGroup(1);
                var workers = new io.netty.channel.nio.NioEventLoopGroup(2);
                var ch = new io.netty.bootstrap.ServerBootstrap().group(boss, workers)
                        .channel(io.netty.channel.socket.nio.NioServerSocketChannel.class)
                        .childHandler(new io.netty.channel.ChannelInitializer<io.netty.channel.socket.SocketChannel>() {
                            @Override
                            protected void initChannel(io.netty.channel.socket.SocketChannel c) {
                                c.pipeline().addLast(new io.netty.handler.codec.http.HttpServerCodec(),
                                        new io.netty.handler.codec.http.HttpObjectAggregator(1 << 20),
                                        new io.netty.channel.ChannelInboundHandlerAdapter() {
                                            @Override
                                            public void channelRead(io.netty.channel.ChannelHandlerContext ctx, Object msg) {
                                                io.netty.util.ReferenceCountUtil.release(msg);
                                                ctx.channel().closeFuture().addListener(f -> told.complete("channel closeFuture"));
                                            }
                                        });
                            }
                        }).bind(new InetSocketAddress("127.0.0.1", 0)).sync().channel();
                server = () -> {
                    ch.close().sync();
                    boss.shutdownGracefully();
                    workers.shutdownGracefully();
                };
                port = ((InetSocketAddress) ch.localAddress()).getPort();
            }
            default -> throw new IllegalArgumentException("jdk, jetty or netty");
        }
        double startMs = (System.nanoTime() - t0) / 1e6;
        try (Socket s = new Socket("127.0.0.1", port)) {
            String body = "{\"prompt\":\"x\"}";
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
                    + body.length() + "\r\n\r\n" + body).getBytes(StandardCharsets.US_ASCII));
            out.flush();
            Thread.sleep(500);
        }
        long closed = System.nanoTime();
        String result;
        try {
            result = told.get(5, TimeUnit.SECONDS) + ", " + String.format("%.1f ms after the close", (System.nanoTime() - closed) / 1e6);
        } catch (TimeoutException e) {
            result = "NOT told within 5 s";
        }
        System.out.printf("%s: started in %.0f ms; client closed mid-request: %s%n", args[0], startMs, result);
        server.close();
        System.exit(0);
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
