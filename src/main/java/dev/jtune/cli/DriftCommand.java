package dev.jtune.cli;

import dev.jtune.drift.DriftAnalysis;
import dev.jtune.drift.DriftReport;
import dev.jtune.util.UserError;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "drift", mixinStandardHelpOptions = true,
        description = {"How a trained model and its inputs have moved since training: new labelled rows (--data, in the experiment's format) "
                + "and/or the prompts of jtune serve's request log (--requests) against the run's training data and test scores.",
                "Exit 0 when every signal is within its threshold, 3 when any is crossed, 2 for bad input."})
final class DriftCommand implements Callable<Integer> {
    static final int EXIT_DRIFT = 3;

    @Parameters(index = "0", paramLabel = "RUN_DIR", description = "The output directory of a `jtune train` run (config.resolved.yaml, metrics.jsonl, final/).")
    Path runDir;

    @Option(names = "--data", paramLabel = "FILE", description = "New labelled rows in the experiment's data format.")
    Path data;

    @Option(names = "--requests", paramLabel = "LOG.jsonl", description = "jtune serve's --request-log (written with --log-texts): its prompts, unlabelled.")
    Path requests;

    @Option(names = "--threshold", paramLabel = "NAME=VALUE", description = "Replace a signal's default threshold (repeatable): "
            + "loss, perplexity, prompt_length_ks, token_js_divergence, unseen_token_share, prompt_perplexity, answer_<metric> (exact_match, token_f1, rouge_l, bleu, chrf).")
    List<String> thresholds = List.of();

    @Option(names = "--json", description = "Print JSON instead of the table.")
    boolean json;

    @Option(names = "--html", paramLabel = "OUT", description = "Also write a self-contained HTML page.")
    Path html;

    @Override
    public Integer call() {
        Map<String, Double> t = new LinkedHashMap<>();
        for (String s : thresholds) {
            int eq = s.indexOf('=');
            if (eq <= 0) throw new UserError("--threshold " + s + ": expected NAME=VALUE");
            try {
                t.put(s.substring(0, eq), Double.parseDouble(s.substring(eq + 1)));
            } catch (NumberFormatException e) {
                throw new UserError("--threshold " + s + ": '" + s.substring(eq + 1) + "' is not a number");
            }
        }
        DriftAnalysis.Result r = DriftAnalysis.run(runDir, data, requests, t, json ? System.err : System.out);
        if (json) System.out.println(DriftReport.json(r));
        else System.out.println(DriftReport.table(r));
        if (html != null) DriftReport.html(r, html);
        return r.drifted() ? EXIT_DRIFT : 0;
    }
}
