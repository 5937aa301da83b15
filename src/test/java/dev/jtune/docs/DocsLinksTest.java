package dev.jtune.docs;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every relative link in README.md and docs/*.md reaches a file that exists, and every {@code #anchor} one of its
 * headings (GitHub's slugs): the README's sections moved to docs/ pages, and a link left pointing at the old place
 * fails here.
 */
class DocsLinksTest {
    private static final Pattern HEADING = Pattern.compile("^#{1,6} (.*)$");
    private static final Pattern LINK = Pattern.compile("\\]\\(([^)\\s]+)\\)");

    @Test
    void relativeLinksAndAnchorsResolve() throws IOException {
        List<Path> pages = new ArrayList<>(List.of(Path.of("README.md")));
        try (Stream<Path> docs = Files.list(Path.of("docs"))) {
            docs.filter(p -> p.toString().endsWith(".md")).sorted().forEach(pages::add);
        }
        Map<Path, Set<String>> anchors = new HashMap<>();
        List<String> broken = new ArrayList<>();
        int checked = 0;
        for (Path page : pages) {
            boolean fence = false;
            int line = 0;
            for (String l : Files.readAllLines(page)) {
                line++;
                if (l.startsWith("```")) fence = !fence;
                if (fence || l.startsWith("```")) continue;
                Matcher m = LINK.matcher(l);
                while (m.find()) {
                    String target = m.group(1);
                    if (target.matches("[a-z]+:.*")) continue;   // http:, https:, mailto:
                    checked++;
                    int hash = target.indexOf('#');
                    String file = hash < 0 ? target : target.substring(0, hash);
                    Path resolved = file.isEmpty() ? page : page.resolveSibling(file).normalize();
                    if (!Files.exists(resolved)) {
                        broken.add(page + ":" + line + ": " + target + " (no file " + resolved + ")");
                    } else if (hash >= 0 && resolved.toString().endsWith(".md")) {
                        String anchor = target.substring(hash + 1);
                        Set<String> have = anchors.computeIfAbsent(resolved, DocsLinksTest::anchors);
                        if (!have.contains(anchor)) broken.add(page + ":" + line + ": " + target + " (no heading #" + anchor + " in " + resolved + ")");
                    }
                }
            }
        }
        assertTrue(checked > 20, "the pages have links to check: " + checked);
        assertEquals(List.of(), broken);
    }

    /** GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
    static Set<String> anchors(Path page) {
        Set<String> out = new HashSet<>();
        Map<String, Integer> seen = new HashMap<>();
        boolean fence = false;
        try {
            for (String l : Files.readAllLines(page)) {
                if (l.startsWith("```")) fence = !fence;
                Matcher m = HEADING.matcher(l);
                if (fence || !m.matches()) continue;
                String slug = m.group(1).strip().toLowerCase(Locale.ROOT).replaceAll("[^\\p{L}\\p{N}_\\- ]", "").replace(' ', '-');
                int n = seen.merge(slug, 1, Integer::sum) - 1;
                out.add(n == 0 ? slug : slug + "-" + n);
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        return out;
    }

    @Test
    void slugsAreGitHubs() throws IOException {
        Path page = Files.createTempFile("slugs", ".md");
        Files.writeString(page, "# 4-bit (QLoRA) bases\n## One machine, no Python: `--nproc-per-node`\n```\n# not a heading\n```\n## Faults\n## Faults\n");
        assertEquals(Set.of("4-bit-qlora-bases", "one-machine-no-python---nproc-per-node", "faults", "faults-1"), anchors(page));
        Files.delete(page);
    }
}
