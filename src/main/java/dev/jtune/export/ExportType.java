package dev.jtune.export;

import dev.jtune.util.UserError;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * {@code --type}: the weights' encoding, with llama.cpp's {@code general.file_type} (enum llama_ftype) and the
 * ggml type most 2-D weights get ({@link TensorTypeChoice} decides per tensor; 1-D tensors stay F32).
 */
public enum ExportType {
    F32(0, GgmlType.F32),
    F16(1, GgmlType.F16),
    BF16(32, GgmlType.BF16),
    Q8_0(7, GgmlType.Q8_0),
    Q4_0(2, GgmlType.Q4_0),
    Q4_K_M(15, GgmlType.Q4_K),
    Q6_K(18, GgmlType.Q6_K);

    public final int fileType;
    public final GgmlType base;

    ExportType(int fileType, GgmlType base) {
        this.fileType = fileType;
        this.base = base;
    }

    public String cliName() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static ExportType parse(String s) {
        for (ExportType t : values()) if (t.cliName().equals(s.toLowerCase(Locale.ROOT))) return t;
        throw new UserError("--type: unknown type '" + s + "'; expected one of "
                + Arrays.stream(values()).map(ExportType::cliName).collect(Collectors.joining(", ")));
    }
}
