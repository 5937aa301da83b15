package dev.jtune.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Map;

@Command(name = "env", mixinStandardHelpOptions = true,
        description = "Print this installation's versions, natives and devices, for bug reports (as `transformers env`).")
final class EnvCommand implements Runnable {
    @Option(names = "--json", description = "Print the report as one JSON document.")
    boolean json;

    @Override
    public void run() {
        Map<String, Object> report = EnvironmentReport.collect();
        if (json) {
            JsonOut.print(report);
            return;
        }
        print("", report);
    }

    /** Nested maps as indented "key: value" lines; lists one item per line. */
    @SuppressWarnings("unchecked")
    private static void print(String indent, Map<String, Object> m) {
        m.forEach((k, v) -> {
            if (v instanceof Map<?, ?> sub) {
                System.out.println(indent + k + ":");
                print(indent + "  ", (Map<String, Object>) sub);
            } else if (v instanceof List<?> list) {
                System.out.println(indent + k + ": " + (list.isEmpty() ? "none" : ""));
                for (Object o : list) {
                    if (o instanceof Map<?, ?> item) {
                        System.out.println(indent + "  -");
                        print(indent + "    ", (Map<String, Object>) item);
                    } else {
                        System.out.println(indent + "  " + o);
                    }
                }
            } else {
                System.out.println(indent + k + ": " + v);
            }
        });
    }
}
