package dev.jtune.cli;

import dev.jtune.kernels.KernelMode;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.peft.AdapterLoader;
import dev.jtune.util.UserError;
import dev.jtune.util.Devices;
import dev.jtune.util.Tensors;
import picocli.CommandLine.Option;

import java.nio.file.Path;

/** --model, --dtype and --device, shared by commands that run a model. */
final class ModelOptions {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face model directory.")
    Path model;

    @Option(names = "--dtype", defaultValue = "float32",
            description = "Compute dtype: float32 (whatever the stored dtype) or bfloat16. Default: ${DEFAULT-VALUE}.")
    String dtype;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu, cuda, cuda:N or auto. Default: ${DEFAULT-VALUE}.")
    String device;

    @Option(names = "--adapter", paramLabel = "DIR", description = "A PEFT LoRA adapter directory to apply to the model (jtune's or Python PEFT's).")
    Path adapter;

    @Option(names = "--kernels", defaultValue = "auto", paramLabel = "auto|off",
            description = "jtune's fused CUDA kernels where they apply (auto) or LibTorch only (off). Default: ${DEFAULT-VALUE}.")
    String kernels;

    /** Checks --dtype, --device and --kernels before any work starts; commands call it first. */
    void validate() {
        Tensors.parseDtype(dtype, "--dtype");
        Devices.parse(device, "--device");
        kernels(kernels);
        if (adapter != null && !AdapterLoader.isAdapterDir(adapter)) {
            throw new UserError("--adapter: no adapter_config.json in " + adapter + "; expected a PEFT adapter directory");
        }
    }

    /** The adapter's tokenizer files when fine-tuning saved them with it (its chat template), else the model's. */
    Path tokenizerDir() {
        return AdapterLoader.tokenizerDir(model, adapter);
    }

    CausalLM load() {
        return AdapterLoader.load(model, adapter, Tensors.parseDtype(dtype, "--dtype"), Devices.parse(device, "--device"), kernels(kernels));
    }

    /** The --kernels value as Ops, or exit 2 naming the option (also `jtune serve`'s, whose other options differ). */
    static Ops kernels(String kernels) {
        try {
            return Ops.of(KernelMode.parse(kernels));
        } catch (IllegalArgumentException e) {
            throw new UserError("--kernels: unknown value '" + kernels + "'; expected auto or off");
        }
    }
}
