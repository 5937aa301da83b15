package dev.jtune.data;

import dev.jtune.config.DataSection;
import dev.jtune.data.DataReport.FileReport;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * From data files to tokenised examples, the {@code data:} section's recipe:
 * <ol>
 *   <li>read and clean each file ({@link RowCleaner}: CSV, JSON, Parquet, Arrow; whitespace, empties, duplicates);</li>
 *   <li>split each training source (train_file, or each of data.datasets) by a seeded shuffle of distinct rows
 *       ({@link DataSplitter});</li>
 *   <li>draw the training examples of a mixture by weight ({@link MixtureSampler});</li>
 *   <li>render, tokenise and mask each example, on {@code workers} threads ({@link ExampleEncoder});</li>
 *   <li>print the summary lines ({@link DataReport}).</li>
 * </ol>
 */
public final class DatasetPreparer {
    /** Rows per tokenising task. */
    private static final int CHUNK = 64;

    private DatasetPreparer() {}

    /**
     * {@link #prepare(DataSection, long, HfTokenizer, PrintStream, int)} through the tokenized-data cache
     * ({@link DataCache}): an entry for the same inputs is read instead of preparing again; a new result is
     * written. What train, eval, lr-find and sweep trials call; {@code --no-cache} (the {@link
     * DataCache#DISABLE_PROPERTY} property) skips the cache.
     */
    public static PreparedData prepareCached(DataSection d, long seed, HfTokenizer tok, PrintStream log, int workers) {
        refusePreferenceData(d);
        if (DataCache.disabled()) return prepare(d, seed, tok, log, workers);
        long start = System.nanoTime();
        java.nio.file.Path entry = DataCache.entry(d, seed, tok);
        boolean anyChat = d.sources().stream().anyMatch(s -> s.format() != DataSection.Format.TEXT);
        PreparedData cached = DataCache.load(entry, anyChat ? ChatTemplate.forTokenizer(tok) : null);
        if (cached != null) {
            if (log != null) {
                log.printf(java.util.Locale.ROOT, "data: read from the tokenized-data cache %s in %.1f s (--no-cache prepares again)%n",
                        entry, (System.nanoTime() - start) / 1e9);
                for (String line : cached.report().lines()) log.println(line);
            }
            return cached;
        }
        PreparedData fresh = prepare(d, seed, tok, log, workers);
        String problem = DataCache.store(entry, fresh);
        if (log != null) {
            log.println(problem != null ? "data: note: " + problem : "data: tokenized data cached in " + entry);
        }
        return fresh;
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

    /** {@link #prepare(DataSection, long, HfTokenizer, PrintStream, int)} on up to 4 threads. */
    public static PreparedData prepare(DataSection d, long seed, HfTokenizer tok, PrintStream log) {
        return prepare(d, seed, tok, log, Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors())));
    }

    /**
     * @param seed    seeds the train / validation / test split (training.seed)
     * @param log     receives the summary lines; null for none
     * @param workers threads that tokenise rows (training.dataloader_num_workers; 0 means 1)
     * @throws UserError for unreadable files, bad rows under {@code on_bad_row: fail}, or no training example left
     */
    public static PreparedData prepare(DataSection d, long seed, HfTokenizer tok, PrintStream log, int workers) {
        refusePreferenceData(d);
        List<DataSection> sources = d.sources();
        boolean anyChat = sources.stream().anyMatch(s -> s.format() != DataSection.Format.TEXT);
        ChatTemplate template = anyChat ? ChatTemplate.forTokenizer(tok) : null;
        ExampleEncoder encoder = new ExampleEncoder(d, tok, template);
        boolean failOnBadRow = d.onBadRow() == DataSection.OnBadRow.FAIL;
        List<FileReport> reports = new ArrayList<>();
        AtomicInteger lastTurnOnly = new AtomicInteger();

        // tokenising is CPU-bound and independent per row: every core, whatever the data loader's workers
        int threads = Math.max(Math.max(1, workers), Runtime.getRuntime().availableProcessors());
        ExecutorService pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "jtune-tokenize");
            t.setDaemon(true);
            return t;
        });
        try {
            // each training source: clean, split by distinct row, then tokenise each part
            List<List<Example>> trainParts = new ArrayList<>();
            List<Example> validation = new ArrayList<>(), test = new ArrayList<>();
            List<AnswerPrompt> validationPrompts = new ArrayList<>(), testPrompts = new ArrayList<>();
            int truncated = 0;
            for (DataSection s : sources) {
                FileTally tally = new FileTally(s.trainFile(), "train", failOnBadRow);
                List<List<Candidate>> parts = DataSplitter.split(new RowCleaner(s).clean(s.trainFile(), tally),
                        d.effectiveValidationSplit(), d.effectiveTestSplit(), seed, s.trainFile());
                List<Example> train = encodeAll(parts.get(0), encoder, tally, pool, lastTurnOnly, null);
                List<Example> v = encodeAll(parts.get(1), encoder, tally, pool, lastTurnOnly, validationPrompts);
                List<Example> t = encodeAll(parts.get(2), encoder, tally, pool, lastTurnOnly, testPrompts);
                reports.add(tally.report(train.size() + v.size() + t.size()));
                trainParts.add(train);
                validation.addAll(v);
                test.addAll(t);
                truncated += tally.truncated;
            }
            MixtureSampler.Mixture mixture = MixtureSampler.draw(trainParts, d.weights(), seed);
            List<Example> train = mixture.examples();
            RowCleaner cleaner = new RowCleaner(d);

            if (d.validationFile() != null) {
                FileTally t = new FileTally(d.validationFile(), "validation", failOnBadRow);
                validationPrompts.clear();
                validation = encodeAll(cleaner.clean(d.validationFile(), t), encoder, t, pool, lastTurnOnly, validationPrompts);
                reports.add(t.report(validation.size()));
                truncated += t.truncated;
            }
            if (d.testFile() != null) {
                FileTally t = new FileTally(d.testFile(), "test", failOnBadRow);
                testPrompts.clear();
                test = encodeAll(cleaner.clean(d.testFile(), t), encoder, t, pool, lastTurnOnly, testPrompts);
                reports.add(t.report(test.size()));
                truncated += t.truncated;
            }

            List<String> mixtureLines = sources.size() == 1 ? List.of() : mixture.lines(sources, d.weights());
            DataReport report = report(reports, train, validation.size(), test.size(), truncated, d.maxSeqLength(),
                    lastTurnOnly.get(), mixtureLines);
            if (log != null) {
                for (String line : report.lines()) log.println(line);
            }
            if (train.isEmpty()) {
                throw new UserError(d.describeTraining() + ": no training examples left (" + reports.get(0).summary() + ")");
            }
            return new PreparedData(List.copyOf(train), List.copyOf(validation), List.copyOf(test), report, template,
                    List.copyOf(validationPrompts), List.copyOf(testPrompts));
        } finally {
            pool.shutdownNow();
        }
    }

    private static DataReport report(List<FileReport> files, List<Example> train, int validation, int test,
                                     int truncated, int maxSeqLength, int lastTurnOnly, List<String> mixture) {
        long trainTokens = 0;
        long targets = 0;
        int longest = 0;
        for (Example e : train) {
            trainTokens += e.length();
            targets += e.targetTokens();
            longest = Math.max(longest, e.length());
        }
        List<String> notes = new ArrayList<>(mixture);
        if (lastTurnOnly > 0) {
            notes.add(lastTurnOnly + " chat rows train on their last assistant turn only: the chat template"
                    + " renders earlier turns differently once later messages follow");
        }
        return new DataReport(files, train.size(), validation, test, trainTokens, targets, longest, truncated,
                maxSeqLength, notes);
    }

    /**
     * Encodes {@code cands} on the pool in chunks, keeping their order; counts drops and bad rows in {@code tally}; adds
     * the examples' {@link AnswerPrompt}s to {@code prompts} when it is not null.
     */
    private static List<Example> encodeAll(List<Candidate> cands, ExampleEncoder encoder, FileTally tally,
                                           ExecutorService pool, AtomicInteger lastTurnOnly, List<AnswerPrompt> prompts) {
        List<Future<ExampleEncoder.Encoded[]>> futures = new ArrayList<>();
        for (int from = 0; from < cands.size(); from += CHUNK) {
            List<Candidate> part = cands.subList(from, Math.min(cands.size(), from + CHUNK));
            futures.add(pool.submit(() -> {
                ExampleEncoder.Encoded[] out = new ExampleEncoder.Encoded[part.size()];
                for (int i = 0; i < out.length; i++) out[i] = encoder.encode(part.get(i));
                return out;
            }));
        }
        List<Example> examples = new ArrayList<>();
        int k = 0;
        for (Future<ExampleEncoder.Encoded[]> f : futures) {
            ExampleEncoder.Encoded[] results;
            try {
                results = f.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while tokenising " + tally.file, e);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException re) throw re;
                throw new IllegalStateException(e.getCause());
            }
            for (ExampleEncoder.Encoded r : results) {
                Candidate c = cands.get(k++);
                if (r.templateError() != null) {
                    tally.badRow(DataReport.Reason.TEMPLATE_ERROR, c.line(), r.templateError());
                } else if (r.dropped() != null) {
                    tally.drop(r.dropped(), c.line());
                } else {
                    if (r.truncated()) tally.truncated++;
                    if (r.lastTurnOnly()) lastTurnOnly.incrementAndGet();
                    examples.add(r.example());
                    if (prompts != null && r.answer() != null) prompts.add(r.answer());
                }
            }
        }
        return examples;
    }
}
