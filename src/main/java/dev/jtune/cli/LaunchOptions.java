package dev.jtune.cli;

import dev.jtune.distributed.Launcher;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.nio.file.Path;
import java.util.List;

/**
 * {@code --nproc-per-node N} and {@code --master-port P} for train and bench: this process becomes the launcher of
 * N ranks ({@link Launcher}), each running the same command line without these two options.
 */
final class LaunchOptions {
    @Option(names = "--nproc-per-node", paramLabel = "N",
            description = "Start N processes of this command on this node for data-parallel training, with the variables torchrun "
                    + "sets (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT); rank 0 prints here, "
                    + "the others write logs/rankK.log. SIGINT/SIGTERM pass on to them; when one fails the others are stopped and "
                    + "jtune exits with its code. For several nodes use torchrun, srun or a PyTorchJob (docs/distributed.md).")
    Integer nprocPerNode;

    @Option(names = "--master-port", paramLabel = "PORT",
            description = "With --nproc-per-node: the port of rank 0's store on 127.0.0.1 (default: a free port).")
    Integer masterPort;

    @Spec(Spec.Target.MIXEE)
    CommandSpec command;

    boolean requested() {
        if (masterPort != null && nprocPerNode == null) {
            throw new dev.jtune.util.UserError("--master-port works with --nproc-per-node only (torchrun and SLURM pass MASTER_PORT in the environment)");
        }
        return nprocPerNode != null;
    }

    /** Runs the ranks and returns the exit code for this process. */
    int launch(Path logDir) {
        List<String> args = Launcher.withoutOptions(command.commandLine().getParseResult().originalArgs(), "--nproc-per-node", "--master-port");
        return Launcher.run(new Launcher.Options(nprocPerNode, masterPort, logDir, Launcher.DEFAULT_GRACE),
                Launcher.javaCommand(Main.class, args), System.err);
    }
}
