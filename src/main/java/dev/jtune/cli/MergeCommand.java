package dev.jtune.cli;

import dev.jtune.peft.AdapterLoader;
import dev.jtune.peft.LoraMerge;
import dev.jtune.peft.PeftAdapter;
import dev.jtune.peft.QuantizedMerge;
import dev.jtune.quant.QuantizedCheckpoint;
import dev.jtune.util.Tensors;
import dev.jtune.util.UserError;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;

@Command(name = "merge", mixinStandardHelpOptions = true,
        description = {"Fold a LoRA adapter into its base model and write a Hugging Face model directory (streams shard by shard).",
                "An adapter trained on a 4-bit base (a pre-quantized --model, or QLoRA's quantize-on-load, recorded in the adapter's "
                        + "base_quantization_config.json) merges onto the dequantized 4-bit weights it was trained against; "
                        + "--base DIR merges it onto the original 16/32-bit checkpoint instead."})
final class MergeCommand implements Runnable {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "The base model directory.")
    Path model;

    @Option(names = "--adapter", required = true, paramLabel = "DIR", description = "The PEFT adapter directory (adapter_config.json + adapter_model.safetensors).")
    Path adapter;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Where to write the merged model.")
    Path out;

    @Option(names = "--dtype", description = "Output dtype: float32, bfloat16 or float16 (default: as the base is stored).")
    String dtype;

    @Option(names = "--base", paramLabel = "DIR", description = "For an adapter trained on a 4-bit base (QLoRA): merge onto this "
            + "original 16/32-bit checkpoint instead of the dequantized 4-bit weights the adapter was trained against.")
    Path base;

    @Override
    public void run() {
        var st = dtype == null ? null : Tensors.parseDtype(dtype, "--dtype");
        if (!AdapterLoader.isAdapterDir(adapter)) throw new UserError("--adapter: no adapter_config.json in " + adapter + "; expected a PEFT adapter directory");
        boolean fourBit = QuantizedMerge.fourBitBase(model, adapter);
        if (base != null) {
            if (!fourBit) {
                throw new UserError("--base: the adapter was trained on a 16/32-bit base (--model " + model + " is not 4-bit and "
                        + adapter + " has no " + PeftAdapter.BASE_QUANTIZATION + "); --base is for adapters trained on a 4-bit base");
            }
            if (QuantizedCheckpoint.isQuantized(base)) {
                throw new UserError("--base: " + base + " is a 4-bit checkpoint; give the original 16/32-bit model directory");
            }
            LoraMerge.merge(base, adapter, out, st, System.out);   // the original weights: W + BA, without the quantization error
        } else if (fourBit) {
            QuantizedMerge.merge(model, adapter, out, st, System.out);   // the weights the adapter was trained against
        } else {
            LoraMerge.merge(model, adapter, out, st, System.out);
        }
    }
}
