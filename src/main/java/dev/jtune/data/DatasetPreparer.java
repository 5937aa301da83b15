package dev.jtune.data;

import dev.jtune.config.DataSection;
import dev.jtune.data.DataReport.FileReport;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * From data files to tokenised examples, the {@code data:} section's recipe, streamed: memory is bounded by a
 * budget of rows in flight, not by the dataset.
 * <ol>
 *   <li>each file's rows are read one at a time ({@link RowReader#forEach}) and handed, in chunks, to a pool of
 *       threads on every core that clean ({@link RowCleaner}: whitespace, empties, the row's 128-bit hash) and
 *       tokenise and mask them ({@link ExampleEncoder}); at most {@code rowsInFlight} rows are between the reader and
 *       the writer at any time;</li>
 *   <li>in file order, duplicates are dropped by hash ({@link RowHashes}) and each example is appended to the
 *       tokenized-data files ({@link TokenStoreWriter}): ids, trained flags, offsets, nothing kept on the heap;</li>
 *   <li>each training source (train_file, or each of data.datasets) is split by a seeded shuffle of its distinct
 *       rows ({@link DataSplitter#assign}), and a mixture's training examples drawn by weight ({@link MixtureSampler}),
 *       both as example indices;</li>
 *   <li>the result is mapped ({@link TokenStore}) and the summary lines printed ({@link DataReport}).</li>
 * </ol>
 * What grows with the data is per row a few primitive numbers (hash, group, example index: about 50 bytes).
 */
public final class DatasetPreparer {
    /** Rows read ahead of the writer by default: with ~1-2 KB per row in flight, a few MB. */
    static final int DEFAULT_ROWS_IN_FLIGHT = 4096;
    /** Seconds between progress lines on standard error. */
    private static final double PROGRESS_EVERY_S = 5;

    private DatasetPreparer() {}

    /**
     * {@link #prepare(DataSection, long, HfTokenizer, PrintStream, int)} through the tokenized-data cache
     * ({@link DataCache}): an entry for the same inputs is mapped instead of preparing again; a new one is prepared
     * into place. What train, eval, lr-find and sweep trials call; {@code --no-cache} (the {@link
     * DataCache#DISABLE_PROPERTY} property) prepares into a temporary directory instead, as {@link #prepare} does.
     */
    public static PreparedData prepareCached(DataSection d, long seed, HfTokenizer tok, PrintStream log, int workers) {
        refusePreferenceData(d);
        if (DataCache.disabled()) return prepare(d, seed, tok, log, workers);
        long start = System.nanoTime();
        Path entry = DataCache.entry(d, seed, tok);
        PreparedData cached = DataCache.load(entry, templateFor(d, tok));
        if (cached != null) {
            if (log != null) {
                log.printf(Locale.ROOT, "data: mapped the tokenized-data cache %s in %.1f s (--no-cache prepares again)%n",
                        entry, (System.nanoTime() - start) / 1e9);
                for (String line : cached.report().lines()) log.println(line);
            }
            return cached;
        }
        if (Files.isDirectory(entry)) {
            // entries are renamed into place whole, so one that cannot be read was damaged outside jtune: replace it
            if (log != null) log.println("data: note: the tokenized-data cache entry " + entry + " cannot be read; preparing it again");
            DataCache.deleteTree(entry);
        }
        Path tmp;
        try {
            Files.createDirectories(entry.getParent());
            tmp = Files.createTempDirectory(entry.getParent(), ".tmp-" + entry.getFileName());
        } catch (IOException e) {
            if (log != null) log.println("data: note: cannot write the tokenized-data cache " + entry + ": " + e.getMessage());
            return prepare(d, seed, tok, log, workers);
        }
        try {
            DataReport report = prepareInto(tmp, d, seed, tok, log, workers, DEFAULT_ROWS_IN_FLIGHT);
            DataCache.publish(tmp, entry);
            PreparedData data = DataCache.load(entry, templateFor(d, tok));
            if (data == null) throw new IOException("the entry just written cannot be read");
            if (log != null) log.println("data: tokenized data cached in " + entry);
            return new PreparedData(data.train(), data.validation(), data.test(), report, data.template(),
                    data.validationPrompts(), data.testPrompts());
        } catch (IOException e) {
            throw new UserError("cannot write the tokenized-data cache " + entry + " (data.cache_dir; --no-cache"
                    + " prepares into a temporary directory): " + e.getMessage(), e);
        } finally {
            if (Files.exists(tmp)) DataCache.deleteTree(tmp);
        }
    }

    /**
     * Pairs (format preference) and KTO's labelled completions are items of two sequences, read by {@link PreferenceRows}
     * for {@code jtune train} with a preference training.method; the commands that read supervised examples (data, eval,
     * lr-find, drift, the API's evaluate) say so instead of failing inside the row cleaner.
     */
    private static void refusePreferenceData(DataSection d) {
        for (DataSection s : d.sources()) {
            if (s.format() == DataSection.Format.PREFERENCE || s.format() == DataSection.Format.KTO) {
                throw new UserError("data.format " + s.format().name().toLowerCase(java.util.Locale.ROOT) + " (" + s.describeTraining()
                        + "): preference data is read by jtune train with training.method dpo, orpo, simpo or kto; this reads "
                        + "supervised examples (format text, instruction, chat, sharegpt or alpaca)");
            }
        }
    }

    private static ChatTemplate templateFor(DataSection d, HfTokenizer tok) {
        boolean anyChat = d.sources().stream().anyMatch(s -> s.format() != DataSection.Format.TEXT);
        return anyChat ? ChatTemplate.forTokenizer(tok) : null;
    }

    /** {@link #prepare(DataSection, long, HfTokenizer, PrintStream, int)} on up to 4 threads. */
    public static PreparedData prepare(DataSection d, long seed, HfTokenizer tok, PrintStream log) {
        return prepare(d, seed, tok, log, Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors())));
    }

    /**
     * Prepares without the cache: into a temporary directory that is mapped and then deleted (the mapping stays
     * valid; the space is freed when the examples are no longer used).
     *
     * @param seed    seeds the train / validation / test split (training.seed)
     * @param log     receives the summary lines; null for none
     * @param workers threads that tokenise rows (training.dataloader_num_workers; 0 means 1); every core is used
     * @throws UserError for unreadable files, bad rows under {@code on_bad_row: fail}, or no training example left
     */
    public static PreparedData prepare(DataSection d, long seed, HfTokenizer tok, PrintStream log, int workers) {
        return prepare(d, seed, tok, log, workers, DEFAULT_ROWS_IN_FLIGHT, MappedFile.DEFAULT_SEGMENT_BYTES);
    }

    /** As {@link #prepare(DataSection, long, HfTokenizer, PrintStream, int)} with the row budget and mapping segment size (tests). */
    static PreparedData prepare(DataSection d, long seed, HfTokenizer tok, PrintStream log, int workers,
                                int rowsInFlight, long segmentBytes) {
        refusePreferenceData(d);
        Path tmp = null;
        try {
            tmp = Files.createTempDirectory("jtune-data-");
            DataReport report = prepareInto(tmp, d, seed, tok, log, workers, rowsInFlight);
            TokenStore store = TokenStore.open(tmp, DataCache.FORMAT, segmentBytes);
            return DataCache.mapped(store, report, templateFor(d, tok));
        } catch (IOException e) {
            throw new UserError("cannot write the prepared data to a temporary directory " + tmp + ": " + e.getMessage(), e);
        } finally {
            if (tmp != null) DataCache.deleteTree(tmp);   // mapped files stay readable until unmapped
        }
    }

    /** The largest number of rows one preparation held between reading and writing (tests check the budget). */
    static volatile int lastPeakRowsInFlight;

    /** Prepares into {@code dir} (a {@link TokenStore} and meta.json); returns the summary, printed to {@code log}. */
    static DataReport prepareInto(Path dir, DataSection d, long seed, HfTokenizer tok, PrintStream log, int workers,
                                  int rowsInFlight) throws IOException {
        List<DataSection> sources = d.sources();
        ChatTemplate template = templateFor(d, tok);
        ExampleEncoder encoder = new ExampleEncoder(d, tok, template);
        boolean failOnBadRow = d.onBadRow() == DataSection.OnBadRow.FAIL;
        List<FileReport> reports = new ArrayList<>();
        // tokenising is CPU-bound and independent per row: every core, whatever the data loader's workers
        int threads = Math.max(Math.max(1, workers), Runtime.getRuntime().availableProcessors());
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "jtune-tokenize");
            t.setDaemon(true);
            return t;
        });
        Progress progress = new Progress(log == null ? null : System.err);
        lastPeakRowsInFlight = 0;
        try (TokenStoreWriter out = new TokenStoreWriter(dir)) {
            Stream stream = new Stream(pool, threads, rowsInFlight, encoder, out, progress);
            List<int[]> trainParts = new ArrayList<>();
            int[] validation = new int[0], test = new int[0];
            int truncated = 0, lastTurnOnly = 0;
            for (DataSection s : sources) {
                FileTally tally = new FileTally(s.trainFile(), "train", failOnBadRow);
                Stream.Result r = stream.run(s.trainFile(), new RowCleaner(s), s.dropDuplicates(), tally);
                byte[] where = DataSplitter.assign(r.groupOf, r.candidates, r.groups, d.effectiveValidationSplit(),
                        d.effectiveTestSplit(), seed, s.trainFile());
                int[][] parts = r.parts(where);
                reports.add(tally.report(parts[0].length + parts[1].length + parts[2].length));
                trainParts.add(parts[0]);
                validation = concat(validation, parts[1]);
                test = concat(test, parts[2]);
                truncated += tally.truncated;
                lastTurnOnly += r.lastTurnOnly;
            }
            MixtureSampler.Mixture mixture = MixtureSampler.draw(trainParts, d.weights(), seed);
            int[] train = mixture.examples();
            RowCleaner cleaner = new RowCleaner(d);
            if (d.validationFile() != null) {
                FileTally t = new FileTally(d.validationFile(), "validation", failOnBadRow);
                Stream.Result r = stream.run(d.validationFile(), cleaner, d.dropDuplicates(), t);
                validation = r.parts(new byte[r.candidates])[0];
                reports.add(t.report(validation.length));
                truncated += t.truncated;
                lastTurnOnly += r.lastTurnOnly;
            }
            if (d.testFile() != null) {
                FileTally t = new FileTally(d.testFile(), "test", failOnBadRow);
                Stream.Result r = stream.run(d.testFile(), cleaner, d.dropDuplicates(), t);
                test = r.parts(new byte[r.candidates])[0];
                reports.add(t.report(test.length));
                truncated += t.truncated;
                lastTurnOnly += r.lastTurnOnly;
            }
            progress.done(out);
            List<String> mixtureLines = sources.size() == 1 ? List.of() : mixture.lines(sources, d.weights());
            DataReport report = report(reports, train, out, validation.length, test.length, truncated, d.maxSeqLength(),
                    lastTurnOnly, mixtureLines);
            if (log != null) {
                for (String line : report.lines()) log.println(line);
            }
            if (train.length == 0) {
                throw new UserError(d.describeTraining() + ": no training examples left (" + reports.get(0).summary() + ")");
            }
            out.finish(train, validation, test);
            DataCache.writeMeta(dir, report);
            return report;
        } finally {
            pool.shutdownNow();
        }
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static DataReport report(List<FileReport> files, int[] train, TokenStoreWriter store, int validation, int test,
                                     int truncated, int maxSeqLength, int lastTurnOnly, List<String> mixture) {
        long trainTokens = 0;
        long targets = 0;
        int longest = 0;
        for (int e : train) {
            trainTokens += store.length(e);
            targets += store.targets(e);
            longest = Math.max(longest, store.length(e));
        }
        List<String> notes = new ArrayList<>(mixture);
        if (lastTurnOnly > 0) {
            notes.add(lastTurnOnly + " chat rows train on their last assistant turn only: the chat template"
                    + " renders earlier turns differently once later messages follow");
        }
        return new DataReport(files, train.length, validation, test, trainTokens, targets, longest, truncated,
                maxSeqLength, notes);
    }

    /** Rows/s and tokens/s on standard error every few seconds while a preparation runs (as other long work does). */
    private static final class Progress {
        private final PrintStream err;
        private final long start = System.nanoTime();
        private long last = start;
        private long rows;

        Progress(PrintStream err) {
            this.err = err;
        }

        void row(TokenStoreWriter out, Path file) {
            rows++;
            if (err == null || (rows & 1023) != 0) return;
            long now = System.nanoTime();
            if ((now - last) / 1e9 < PROGRESS_EVERY_S) return;
            last = now;
            double s = (now - start) / 1e9;
            err.printf(Locale.ROOT, "data: preparing %s: %,d rows read, %,d examples, %,.0f rows/s, %,.0f tokens/s%n",
                    file.getFileName(), rows, out.examples(), rows / s, out.tokens() / s);
        }

        void done(TokenStoreWriter out) {
            double s = (System.nanoTime() - start) / 1e9;
            if (err == null || s < PROGRESS_EVERY_S) return;
            err.printf(Locale.ROOT, "data: prepared %,d rows into %,d examples (%,d tokens) in %.1f s: %,.0f rows/s, %,.0f tokens/s%n",
                    rows, out.examples(), out.tokens(), s, rows / s, out.tokens() / s);
        }
    }

    /**
     * One file through the pipeline: the reader's thread hands chunks of rows to the pool and writes finished
     * chunks in order, so at most {@code rowsInFlight} rows are held. Per cleaned row it keeps its group (distinct
     * rows numbered by first appearance) and its example index (-1 when tokenising dropped it).
     */
    private static final class Stream {
        private final ExecutorService pool;
        private final int chunkRows, maxChunks;
        private final ExampleEncoder encoder;
        private final TokenStoreWriter out;
        private final Progress progress;

        /** A row after the pool: cleaned, and (when it is a candidate) encoded. */
        private record Done(RowCleaner.Cleaned cleaned, ExampleEncoder.Encoded encoded) {}

        Stream(ExecutorService pool, int threads, int rowsInFlight, ExampleEncoder encoder, TokenStoreWriter out,
               Progress progress) {
            this.pool = pool;
            // chunks small enough that every thread has several in flight within the budget
            this.chunkRows = Math.max(1, Math.min(256, rowsInFlight / (4 * threads)));
            this.maxChunks = Math.max(1, rowsInFlight / chunkRows);
            this.encoder = encoder;
            this.out = out;
            this.progress = progress;
        }

        /** Per cleaned row (candidate): its group and example (-1: dropped while tokenising). */
        static final class Result {
            int candidates, groups, lastTurnOnly;
            int[] groupOf = new int[1024], exampleOf = new int[1024];

            void add(int group, int example) {
                if (candidates == groupOf.length) {
                    groupOf = Arrays.copyOf(groupOf, candidates * 2);
                    exampleOf = Arrays.copyOf(exampleOf, candidates * 2);
                }
                groupOf[candidates] = group;
                exampleOf[candidates++] = example;
            }

            /** The examples of each part (0 train, 1 validation, 2 test), in file order. */
            int[][] parts(byte[] where) {
                int[] n = new int[3];
                for (int i = 0; i < candidates; i++) if (exampleOf[i] >= 0) n[where[i]]++;
                int[][] out = {new int[n[0]], new int[n[1]], new int[n[2]]};
                int[] k = new int[3];
                for (int i = 0; i < candidates; i++) if (exampleOf[i] >= 0) out[where[i]][k[where[i]]++] = exampleOf[i];
                return out;
            }
        }

        Result run(Path file, RowCleaner cleaner, boolean dropDuplicates, FileTally tally) throws IOException {
            Result result = new Result();
            RowHashes seen = new RowHashes();
            ArrayDeque<Future<Done[]>> inFlight = new ArrayDeque<>();
            List<RowReader.Row> chunk = new ArrayList<>(chunkRows);
            int[] held = {0};
            try {
                RowReader.forEach(file, cleaner.requiredColumns(), row -> {
                    chunk.add(row);
                    if (chunk.size() < chunkRows) return;
                    submit(chunk, cleaner, inFlight, held);
                    while (inFlight.size() >= maxChunks) write(inFlight.poll(), file, dropDuplicates, tally, seen, result, held);
                });
                if (!chunk.isEmpty()) submit(chunk, cleaner, inFlight, held);
                while (!inFlight.isEmpty()) write(inFlight.poll(), file, dropDuplicates, tally, seen, result, held);
            } catch (WriteFailure e) {
                throw (IOException) e.getCause();
            } finally {
                for (Future<Done[]> f : inFlight) f.cancel(true);
            }
            result.groups = seen.size();
            return result;
        }

        private void submit(List<RowReader.Row> chunk, RowCleaner cleaner, ArrayDeque<Future<Done[]>> inFlight, int[] held) {
            RowReader.Row[] rows = chunk.toArray(new RowReader.Row[0]);
            chunk.clear();
            held[0] += rows.length;
            lastPeakRowsInFlight = Math.max(lastPeakRowsInFlight, held[0]);
            inFlight.add(pool.submit(() -> {
                Done[] done = new Done[rows.length];
                for (int i = 0; i < rows.length; i++) {
                    RowCleaner.Cleaned c = cleaner.clean(rows[i]);
                    done[i] = new Done(c, c.candidate() == null ? null : encoder.encode(c.candidate()));
                }
                return done;
            }));
        }

        /** Counts, deduplicates and appends one finished chunk, in file order. */
        private void write(Future<Done[]> f, Path file, boolean dropDuplicates, FileTally tally, RowHashes seen,
                           Result result, int[] held) {
            Done[] chunk;
            try {
                chunk = f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while preparing " + file, e);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException re) throw re;
                if (e.getCause() instanceof Error err) throw err;
                throw new IllegalStateException(e.getCause());
            }
            held[0] -= chunk.length;
            try {
                for (Done d : chunk) {
                    tally.rowsRead++;
                    progress.row(out, file);
                    RowCleaner.Cleaned c = d.cleaned();
                    if (!c.tallied(tally)) continue;
                    int group = seen.find(c.hashHi(), c.hashLo());
                    if (group >= 0 && dropDuplicates) {
                        tally.drop(DataReport.Reason.DUPLICATE, c.line());
                        continue;
                    }
                    if (group < 0) group = seen.add(c.hashHi(), c.hashLo());
                    ExampleEncoder.Encoded r = d.encoded();
                    int example = -1;
                    if (r.templateError() != null) {
                        tally.badRow(DataReport.Reason.TEMPLATE_ERROR, c.line(), r.templateError());
                    } else if (r.dropped() != null) {
                        tally.drop(r.dropped(), c.line());
                    } else {
                        if (r.truncated()) tally.truncated++;
                        if (r.lastTurnOnly()) result.lastTurnOnly++;
                        example = out.add(r.example());
                        if (r.answer() != null) out.addPrompt(example, r.answer());
                    }
                    result.add(group, example);
                }
            } catch (IOException e) {
                throw new WriteFailure(e);
            }
        }

        /** Carries a write failure through the reader's callback (not a reading problem of the data file). */
        private static final class WriteFailure extends RuntimeException {
            WriteFailure(IOException e) {
                super(e);
            }
        }
    }
}
