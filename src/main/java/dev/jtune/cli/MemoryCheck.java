package dev.jtune.cli;

import dev.jtune.plan.DeviceMemory;
import dev.jtune.plan.MemoryPlanner;
import dev.jtune.plan.PlanReport;
import dev.jtune.plan.PlanRequest;

import dev.jtune.config.Experiment;
import dev.jtune.util.Devices;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;

/**
 * The check {@code jtune train} makes before it loads anything: the memory plan of the experiment against the device's
 * memory ({@link DeviceMemory#resolve}: {@value DeviceMemory#ENV} when set, else CUDA's total memory or the CPU's
 * MemAvailable). A run that cannot fit is refused with the breakdown and what to change, unless
 * {@code training.skip_memory_check: true}.
 */
final class MemoryCheck {
    private MemoryCheck() {}

    /** Throws a {@link UserError} (exit 2) when the run is predicted not to fit; returns the report otherwise (null when skipped). */
    static PlanReport before(Experiment exp) {
        if (exp.training().skipMemoryCheck()) return null;
        // one rank of a data-parallel run plans its own share (ZeRO stage 1: its shard of the optimizer state)
        int world = dev.jtune.distributed.LaunchEnv.fromEnvironment(System.getenv()).map(dev.jtune.distributed.LaunchEnv::worldSize).orElse(1);
        PlanRequest r = PlanReport.request(exp, world);
        Device device = Devices.parse(exp.training().device(), "training.device");
        PlanReport report = PlanReport.of(exp.file().toString(), r, DeviceMemory.resolve(null, r.cuda(), device.has_index() ? device.index() : 0));
        if (!report.fits()) {
            throw new UserError(exp.file() + ": the memory plan predicts this run does not fit ("
                    + MemoryPlanner.human(report.plan().totalBytes()) + " needed, " + MemoryPlanner.human(report.budget().bytes())
                    + " available)\n" + report.table().stripTrailing()
                    + "\n(training.skip_memory_check: true starts it anyway; jtune plan " + exp.file() + " prints this plan)");
        }
        return report;
    }
}
