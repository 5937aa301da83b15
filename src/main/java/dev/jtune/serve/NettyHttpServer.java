package dev.jtune.serve;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpContent;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpRequest;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpServerExpectContinueHandler;
import io.netty.handler.codec.http.HttpServerKeepAliveHandler;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The HTTP side of {@code jtune serve} on Netty 4.1 (docs/serve.md says why Netty): the one class that knows the HTTP
 * library; the protocol is {@link OpenAiApi}. Two event-loop threads read and write every connection; the protocol
 * (JSON, chat template, tokenizer) runs on a small executor so a long prompt never stalls the I/O; answers are written
 * by OpenAiApi's writer threads as tokens come. Because the event loop keeps reading each connection, a client that
 * closes its socket is noticed at once (the channel closes) even while its non-streaming answer is still being
 * generated, and {@link ApiExchange#onDisconnect} cancels the generation.
 *
 * <p>Bodies are counted as they arrive: one over the limit is read to its end and discarded, and the protocol answers
 * 413 (the client then reads a clean response rather than a reset connection).
 */
public final class NettyHttpServer implements AutoCloseable {
    private final OpenAiApi api;
    private final long maxBody;
    private final EventLoopGroup boss = new NioEventLoopGroup(1, new DefaultThreadFactory("jtune-http-accept", true));
    private final EventLoopGroup io = new NioEventLoopGroup(2, new DefaultThreadFactory("jtune-http-io", true));
    private final ExecutorService handlers = Executors.newFixedThreadPool(4, new DefaultThreadFactory("jtune-http", true));
    private final AtomicInteger openExchanges = new AtomicInteger();   // requests read whose response has not ended
    private final Channel server;

    public NettyHttpServer(OpenAiApi api) throws IOException {
        this.api = api;
        this.maxBody = api.options().maxBodyBytes();
        ServerBootstrap b = new ServerBootstrap().group(boss, io).channel(NioServerSocketChannel.class)
                .option(ChannelOption.SO_BACKLOG, 128)
                .childOption(ChannelOption.TCP_NODELAY, true)   // each streamed token goes out at once
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new HttpServerCodec(), new HttpServerKeepAliveHandler(), new HttpServerExpectContinueHandler(),
                                new RequestReader());
                    }
                });
        try {
            server = b.bind(new InetSocketAddress(api.options().host(), api.options().port())).sync().channel();
        } catch (Exception e) {   // BindException, an unresolvable host, interruption
            shutdown();
            throw new IOException(e.getMessage() == null ? e.toString() : e.getMessage(), e);
        }
    }

    /** The port bound (useful with port 0). */
    public int port() {
        return ((InetSocketAddress) server.localAddress()).getPort();
    }

    /**
     * Stops listening, waits (10 s at most) until every response begun has been written, then stops the threads. Call
     * after the batcher has drained, so every accepted request has had its answer.
     */
    @Override
    public void close() {
        server.close().awaitUninterruptibly();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (openExchanges.get() > 0 && System.nanoTime() < deadline) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        shutdown();
    }

    private void shutdown() {
        boss.shutdownGracefully(0, 2, TimeUnit.SECONDS);
        io.shutdownGracefully(0, 2, TimeUnit.SECONDS);
        io.terminationFuture().awaitUninterruptibly(5, TimeUnit.SECONDS);
        handlers.shutdown();
    }

    /** Collects one request's head and body (up to the limit), then hands it to the protocol. One per connection. */
    private final class RequestReader extends ChannelInboundHandlerAdapter {
        private HttpRequest request;
        private ByteArrayOutputStream body;   // null once over the limit

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            try {
                if (msg instanceof HttpRequest r) {
                    request = r;
                    body = HttpUtil.getContentLength(r, -1L) > maxBody ? null : new ByteArrayOutputStream();
                }
                if (msg instanceof HttpContent c && request != null) {
                    ByteBuf content = c.content();
                    if (body != null && body.size() + content.readableBytes() > maxBody) body = null;
                    if (body != null) content.readBytes(body, content.readableBytes());
                    if (msg instanceof LastHttpContent) {
                        Exchange ex = new Exchange(ctx.channel(), request, body == null ? null : body.toByteArray());
                        boolean malformed = request.decoderResult().isFailure() || c.decoderResult().isFailure();
                        request = null;
                        body = null;
                        // off the I/O thread: a chat template and a tokenizer over a long prompt take a while
                        handlers.execute(malformed ? () -> api.malformed(ex) : () -> api.handle(ex));
                    }
                }
            } catch (IOException e) {
                ctx.close();   // the ByteArrayOutputStream never throws; readBytes declares it
            } finally {
                ReferenceCountUtil.release(msg);
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();   // a reset connection, a protocol error: nobody to answer
        }
    }

    /** One request and its response on a Netty channel. */
    private final class Exchange implements ApiExchange {
        private final Channel ch;
        private final HttpRequest request;
        private final byte[] body;
        private final boolean keepAlive;
        private final AtomicBoolean counted = new AtomicBoolean();
        private final AtomicBoolean disconnectRun = new AtomicBoolean();
        private volatile boolean ended;
        private volatile Runnable onDisconnect;
        private final ChannelFutureListener closed = f -> clientGone();

        Exchange(Channel ch, HttpRequest request, byte[] body) {
            this.ch = ch;
            this.request = request;
            this.body = body;
            this.keepAlive = HttpUtil.isKeepAlive(request);
            openExchanges.incrementAndGet();
            ch.closeFuture().addListener(closed);
        }

        @Override
        public String method() {
            return request.method().name();
        }

        @Override
        public String path() {
            return new QueryStringDecoder(request.uri()).path();
        }

        @Override
        public String header(String name) {
            return request.headers().get(name);
        }

        @Override
        public byte[] body() {
            return body;
        }

        @Override
        public void respond(int status, String contentType, byte[] bytes, String... extraHeaders) {
            FullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.valueOf(status), Unpooled.wrappedBuffer(bytes));
            r.headers().set(HttpHeaderNames.CONTENT_TYPE, contentType);
            HttpUtil.setContentLength(r, bytes.length);
            for (int i = 0; i + 1 < extraHeaders.length; i += 2) r.headers().set(extraHeaders[i], extraHeaders[i + 1]);
            HttpUtil.setKeepAlive(r, keepAlive);
            end(ch.writeAndFlush(r));
        }

        @Override
        public void startEvents() {
            HttpResponse r = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.OK);
            r.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/event-stream; charset=utf-8");
            r.headers().set(HttpHeaderNames.CACHE_CONTROL, "no-cache");
            HttpUtil.setTransferEncodingChunked(r, true);
            HttpUtil.setKeepAlive(r, keepAlive);
            ch.writeAndFlush(r);
        }

        @Override
        public void event(byte[] data) {
            ch.writeAndFlush(new DefaultHttpContent(Unpooled.wrappedBuffer(data)));
        }

        @Override
        public void endEvents() {
            end(ch.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT));
        }

        @Override
        public void onDisconnect(Runnable r) {
            onDisconnect = r;
            if (!ch.isActive()) clientGone();   // closed before we listened
        }

        /** The response is written (or failed to be): this exchange no longer holds the server open. */
        private void end(ChannelFuture written) {
            ended = true;
            ch.closeFuture().removeListener(closed);
            written.addListener(f -> release());
        }

        private void clientGone() {
            release();
            Runnable r = onDisconnect;
            if (!ended && r != null && disconnectRun.compareAndSet(false, true)) r.run();
        }

        private void release() {
            if (counted.compareAndSet(false, true)) openExchanges.decrementAndGet();
        }
    }
}
