package dev.jtune.cli;

import dev.jtune.api.Experiment;
import dev.jtune.api.Trainer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

@Command(name = "train", mixinStandardHelpOptions = true,
        description = {"Fine-tune a model as an experiment file describes it.",
                "Writes output_dir/checkpoint-STEP/, output_dir/final/ (a Hugging Face model directory), metrics.jsonl, "
                        + "config.resolved.yaml, report.html, and TensorBoard events in logging_dir."})
final class TrainCommand implements Runnable, CommandLine.IExitCodeGenerator {
    @Parameters(index = "0", paramLabel = "EXPERIMENT", description = "The experiment YAML file.")
    Path experiment;

    @Option(names = "--set", paramLabel = "SECTION.KEY=VALUE", description = "Override a key, e.g. --set training.learning_rate=1e-4 (repeatable).")
    List<String> overrides = new ArrayList<>();

    @Option(names = "--resume", paramLabel = "auto|CHECKPOINT",
            description = "Continue a run exactly where a checkpoint left it: 'auto' takes the newest intact checkpoint in output_dir "
                    + "(a new run when there is none); or name a checkpoint directory.")
    String resume;

    @CommandLine.Mixin
    NoCacheOption cache = new NoCacheOption();

    @Option(names = "--overwrite", description = "Start over in an output_dir that holds an earlier run's outputs (deletes only what jtune wrote there).")
    boolean overwrite;

    @CommandLine.Mixin
    LaunchOptions launch = new LaunchOptions();
    private int exitCode;

    @Override
    public void run() {
        Experiment exp = Experiment.load(experiment, overrides);
        if (resume != null && overwrite) throw new dev.jtune.util.UserError("--resume and --overwrite contradict each other; choose one");
        if (launch.requested()) {   // this process only starts and watches the ranks
            exitCode = launch.launch(exp.outputDir().resolve("logs"));
            return;
        }
        MemoryCheck.before(exp.settings());   // the memory plan, before anything loads: refuses a run that cannot fit (exit 2)
        cache.around(() -> {
            Trainer trainer = Trainer.of(exp).overwrite(overwrite);   // the library's run: the API and the CLI train alike
            if (resume != null) trainer.resume(resume);
            try (SignalStop signals = SignalStop.install(System.out)) {   // SIGTERM: finish the step, checkpoint, exit 0
                trainer.preemption(signals::requested).train();
            }
        });
    }

    @Override
    public int getExitCode() {
        return exitCode;
    }
}
