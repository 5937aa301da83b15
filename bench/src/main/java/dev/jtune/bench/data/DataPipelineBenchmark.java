package dev.jtune.bench.data;

import dev.jtune.config.DataSection;
import dev.jtune.data.DatasetPreparer;
import dev.jtune.data.PreparedData;
import dev.jtune.tokenizer.HfTokenizer;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * The data pipeline as {@code jtune train} runs it on the demo: {@link DatasetPreparer#prepare} reads the CSV, cleans
 * it (whitespace, duplicates, empty and broken rows), splits it, renders the instruction format and tokenises every
 * example with labels masked to the answers. One op = the whole file (302 rows); rows/s = 302 / (s/op).
 * {@code -p workers=1,2} compares tokenising threads (training.dataloader_num_workers). Run from the repository root.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class DataPipelineBenchmark {
    @Param("configs/tokenizers/gpt2")
    public String tokenizer;

    @Param("configs/demo/data-science-qa.csv")
    public String csv;

    @Param({"1", "2"})
    public int workers;

    static final long SEED = 42;   // configs/demo.yaml's training.seed
    HfTokenizer tok;
    DataSection options;
    final PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());

    @Setup(Level.Trial)
    public void setup() {
        tok = HfTokenizer.load(Path.of(tokenizer));
        // configs/demo.yaml's data section
        options = DataSection.builder(Path.of(csv)).format(DataSection.Format.INSTRUCTION).promptColumn("question")
                .responseColumn("answer").validationSplit(0.1).testSplit(0.1).maxSeqLength(128).build();
        PreparedData d = DatasetPreparer.prepare(options, SEED, tok, quiet, workers);
        System.out.printf("%n[DataPipelineBenchmark] %s%n", String.join("; ", d.report().lines()));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        tok.close();
    }

    @Benchmark
    public PreparedData prepareDemoCsv() {
        return DatasetPreparer.prepare(options, SEED, tok, quiet, workers);
    }
}
