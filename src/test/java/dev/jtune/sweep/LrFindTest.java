package dev.jtune.sweep;

import dev.jtune.cli.CliTest;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `jtune lr-find` on the README's demo data with a tiny model, and the suggestion rule on a curve of known shape. */
class LrFindTest {
    @TempDir
    static Path tmp;
    static Path base;

    @BeforeAll
    static void makeBaseModel() {
        base = tmp.resolve("base");
        CliTest.Run r = CliTest.run("init-model", "--arch", "llama", "--preset", "tiny", "--tokenizer", "configs/tokenizers/gpt2",
                "--out", base.toString(), "--seed", "1");
        assertEquals(0, r.code(), r.err());
    }

    static String hashTree(Path dir) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted().toList()) {
                md.update(dir.relativize(p).toString().getBytes());
                if (Files.isRegularFile(p)) {
                    try (InputStream in = Files.newInputStream(p)) {
                        md.update(in.readAllBytes());
                    }
                }
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    @Test
    void demoDataSuggestsARateInsideTheRangeAndPlotsIt() throws Exception {
        String before = hashTree(base);
        Path out = tmp.resolve("lr-find");
        CliTest.Run r = CliTest.run("lr-find", "configs/demo.yaml", "--set", "model.path=" + base, "--set", "training.output_dir=" + tmp.resolve("demo"),
                "--set", "training.per_device_train_batch_size=2", "--set", "data.max_seq_length=64",
                "--start", "1e-4", "--end", "100", "--steps", "24", "--out", out.toString());
        assertEquals(0, r.code(), r.err() + r.out());
        assertEquals(before, hashTree(base), "the model directory is untouched");

        Matcher m = Pattern.compile("--set training.learning_rate=(\\S+)").matcher(r.out());
        assertTrue(m.find(), r.out());
        double suggested = Double.parseDouble(m.group(1));
        assertTrue(suggested >= 1e-4 && suggested <= 100, "inside the range: " + suggested);

        // the curve: exponentially growing rates from --start, a loss per step; a rate of 100 wrecks the model, so it stops early
        List<String> csv = Files.readAllLines(out.resolve("lr-find.csv"));
        assertEquals("learning_rate,loss,smoothed_loss", csv.get(0));
        int points = csv.size() - 1;
        assertTrue(points >= 10, "at least the first steps: " + points);
        double lr0 = Double.parseDouble(csv.get(1).split(",")[0]), lr1 = Double.parseDouble(csv.get(2).split(",")[0]);
        assertEquals(1e-4, lr0, 1e-4 * 1e-12);
        assertEquals(Math.pow(1e6, 1.0 / 23), lr1 / lr0, 1e-9, "exponential growth over 24 steps");
        assertTrue(points < 24 && r.out().contains("diverged") || r.out().contains("not finite"), "stopped when the loss diverged: " + r.out());
        double first = Double.parseDouble(csv.get(1).split(",")[1]);
        double minSmoothed = csv.stream().skip(1).mapToDouble(l -> Double.parseDouble(l.split(",")[2])).filter(Double::isFinite).min().orElseThrow();
        assertTrue(minSmoothed < first, "the loss fell somewhere in the range");

        BufferedImage png = ImageIO.read(out.resolve("lr-find.png").toFile());
        assertNotNull(png, "a readable PNG");
        assertEquals(900, png.getWidth());
        assertEquals(520, png.getHeight());
        String svg = Files.readString(out.resolve("lr-find.svg"));
        assertTrue(svg.startsWith("<svg") && svg.contains("suggested"), "SVG with the suggestion marked");
        assertTrue(Files.readString(out.resolve("lr-find.html")).contains("<svg"));
    }

    /** On a smoothed loss that is a logistic step in log(lr) centred at 1e-3, the steepest descent is at 1e-3. */
    @Test
    void suggestionIsTheSteepestDescentOfTheSmoothedLoss() {
        int n = 101;
        double[] lrs = new double[n], loss = new double[n];
        for (int i = 0; i < n; i++) {
            lrs[i] = 1e-6 * Math.pow(1e6, i / 100.0);   // 1e-6 .. 1, 1e-3 at i = 50
            double z = Math.log10(lrs[i]) + 3;
            loss[i] = 2 + 3 / (1 + Math.exp(3 * z)) + (i > 90 ? (i - 90) * 0.5 : 0);   // falls around 1e-3, diverges at the end
        }
        int at = LrFinder.steepest(lrs, loss);
        assertEquals(50, at);
        assertFalse(Double.isNaN(lrs[at]));
    }

    @Test
    void badRangesExit2() throws IOException {
        for (String[] bad : new String[][] {{"--start", "0"}, {"--start", "1e-3", "--end", "1e-4"}, {"--steps", "3"}}) {
            String[] args = Stream.concat(Stream.of("lr-find", "configs/demo.yaml", "--set", "model.path=" + base), Stream.of(bad)).toArray(String[]::new);
            CliTest.Run r = CliTest.run(args);
            assertEquals(2, r.code(), r.err());
            assertTrue(r.err().contains(bad[bad.length - 2]), r.err());
        }
    }
}
