package dev.jtune.train.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.jtune.config.DataSection;
import dev.jtune.util.RuntimeVersions;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What a checkpoint's {@code manifest.json} says about the run beyond its files: the versions of jtune, LibTorch and
 * CUDA (read at run time), the training device with its index, and the SHA-256 of each data file, so that a resumed
 * run can refuse data that changed since the checkpoint.
 */
public final class RunManifest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private RunManifest() {}

    /** SHA-256 of every data file (each mixture source, validation and test files), by path. */
    public static Map<String, String> dataHashes(DataSection data) {
        return dev.jtune.data.DataFiles.hashes(data);
    }

    /** A resumed run must see the same data, or it would not continue the same run. */
    public static void checkSameData(Path checkpoint, Map<String, String> now) {
        try {
            var saved = JSON.readTree(checkpoint.resolve(Checkpoints.MANIFEST).toFile()).path("data");
            for (Map.Entry<String, String> e : now.entrySet()) {
                String was = saved.path(e.getKey()).asText(null);
                if (was != null && !was.equals(e.getValue())) {
                    throw new UserError(e.getKey() + " changed since " + checkpoint + " was written (its hash differs); "
                            + "resuming would not continue the same run: restore the file, or start over with --overwrite");
                }
            }
        } catch (IOException e) {
            throw new UserError(checkpoint + ": cannot read " + Checkpoints.MANIFEST + ": " + e.getMessage(), e);
        }
    }

    /** The manifest without its file list (Checkpoints adds that per checkpoint). */
    public static ObjectNode base(Device device, Map<String, String> dataHashes) {
        ObjectNode m = JSON.createObjectNode();
        String v = RunManifest.class.getPackage().getImplementationVersion();
        m.put("jtune_version", v == null ? "dev" : v);
        m.put("libtorch_version", RuntimeVersions.libtorch());
        m.put("cuda_version", device.is_cuda() ? RuntimeVersions.cuda() : null);
        m.put("device", deviceName(device));   // "cuda:1": Checkpoints saves that device's random generator
        ObjectNode d = m.putObject("data");
        dataHashes.forEach(d::put);
        return m;
    }

    /** "cpu", "cuda" or "cuda:N", as the training device was given. */
    public static String deviceName(Device device) {
        if (!device.is_cuda()) return "cpu";
        return device.has_index() ? "cuda:" + device.index() : "cuda";
    }
}
