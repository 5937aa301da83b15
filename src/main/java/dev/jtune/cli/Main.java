package dev.jtune.cli;

import dev.jtune.util.NativeRuntime;
import dev.jtune.util.UserError;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.PrintWriter;

/**
 * The launcher: {@code java -jar jtune.jar COMMAND …}. Exit codes: 0 success, 2 a user mistake (the
 * message names the file, line or key), 1 an internal error (with a stack trace, for a bug report).
 */
@Command(name = "jtune", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Fine-tune causal language models on LibTorch from YAML experiment files.",
        subcommands = {TrainCommand.class, EvalCommand.class, MergeCommand.class, InspectCommand.class, QuantizeCommand.class, ExportCommand.class,
                TokenizeCommand.class, PerplexityCommand.class, GenerateCommand.class, ServeCommand.class, DriftCommand.class,
                InitModelCommand.class, BenchCommand.class, PlanCommand.class, SweepCommand.class, LrFindCommand.class, DataCommand.class,
                EnvCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    public static final int EXIT_USER_ERROR = 2;
    public static final int EXIT_INTERNAL_ERROR = 1;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        NativeRuntime.configureEnvironment();   // before LibTorch's OpenMP runtime loads
        try {
            dev.jtune.util.LibTorchNatives.ensureLoaded();   // the preset's LibTorch, never one from the linker path
        } catch (UserError e) {
            System.err.println("jtune: error: " + e.getMessage());
            System.exit(EXIT_USER_ERROR);
        }
        dev.jtune.distributed.Launcher.exitWithLauncher();   // a rank of `--nproc-per-node` does not outlive its launcher
        System.exit(run(args));
    }

    /** Runs a command line in this JVM and returns its exit code (tests call this). */
    public static int run(String... args) {
        CommandLine cli = new CommandLine(new Main());
        cli.setExecutionExceptionHandler(Main::handle);
        cli.setParameterExceptionHandler((ex, a) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            err.println("jtune: " + ex.getMessage());
            err.println("Try '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help'.");
            return EXIT_USER_ERROR;
        });
        return cli.execute(args);
    }

    private static int handle(Exception ex, CommandLine cli, CommandLine.ParseResult parsed) {
        PrintWriter err = cli.getErr();
        UserError user = findUserError(ex);
        if (user != null) {
            err.println("jtune: error: " + user.getMessage());
            return EXIT_USER_ERROR;
        }
        for (Throwable c = ex; c != null; c = c.getCause()) {
            if (c instanceof dev.jtune.distributed.DistributedFailure d) {   // another rank died or hung: not a bug, no stack trace
                err.println("jtune: error: " + d.getMessage());
                return EXIT_INTERNAL_ERROR;
            }
        }
        err.println("jtune: internal error (please report it with the command line): " + ex);
        ex.printStackTrace(err);
        return EXIT_INTERNAL_ERROR;
    }

    private static UserError findUserError(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof UserError u) return u;
            if (c.getCause() == c) break;
        }
        return null;
    }

    /** Version from the jar manifest (Maven writes it), "dev" when run from classes; LibTorch's and CUDA's as loaded. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Main.class.getPackage().getImplementationVersion();
            String cuda = dev.jtune.util.RuntimeVersions.cuda();
            return new String[] {"jtune " + (v == null ? "dev" : v) + " (LibTorch " + dev.jtune.util.RuntimeVersions.libtorch()
                    + (cuda == null ? "" : ", CUDA " + cuda) + ")"};
        }
    }
}
