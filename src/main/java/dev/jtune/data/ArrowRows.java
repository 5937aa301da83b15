package dev.jtune.data;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.NullNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import dev.jtune.data.RowReader.Row;
import dev.jtune.util.UserError;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.ipc.ArrowReader;
import org.apache.arrow.vector.ipc.ArrowStreamReader;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.util.Text;

import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Reads Arrow IPC data with Apache Arrow Java: a file ({@code ARROW1} magic, random access), a stream, or a
 * {@code datasets.save_to_disk} directory (its {@code state.json} names the {@code data-*.arrow} shards, which are
 * streams; without one, every {@code *.arrow} file in name order). Rows are numbered from 1 across the shards.
 */
final class ArrowRows {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final byte[] FILE_MAGIC = {'A', 'R', 'R', 'O', 'W', '1'};

    private ArrowRows() {}

    /** The shards of a directory, in order; a single file is its own shard. */
    static List<Path> shards(Path fileOrDir) {
        if (!Files.isDirectory(fileOrDir)) return List.of(fileOrDir);
        Path state = fileOrDir.resolve("state.json");
        List<Path> out = new ArrayList<>();
        if (Files.isRegularFile(state)) {
            try {
                JsonNode files = JSON.readTree(state.toFile()).path("_data_files");
                for (JsonNode f : files) out.add(fileOrDir.resolve(f.path("filename").asText()));
            } catch (IOException e) {
                throw new UserError(state + ": not a readable datasets state.json: " + e.getMessage(), e);
            }
            if (out.isEmpty()) throw new UserError(state + ": names no data files (\"_data_files\" is empty)");
            for (Path p : out) {
                if (!Files.isRegularFile(p)) throw new UserError(state + ": names " + p.getFileName() + ", which is missing");
            }
            return out;
        }
        try (Stream<Path> s = Files.list(fileOrDir)) {
            s.filter(p -> p.getFileName().toString().endsWith(".arrow")).sorted().forEach(out::add);
        } catch (IOException e) {
            throw new UserError(fileOrDir + ": cannot list: " + e.getMessage(), e);
        }
        if (out.isEmpty()) {
            throw new UserError(fileOrDir + ": a directory without state.json or *.arrow files; expected a"
                    + " datasets.save_to_disk directory or a data file");
        }
        return out;
    }

    /** @param shownAs the name in messages (the .gz file a temporary copy was unpacked from) */
    static void read(Path fileOrDir, Path shownAs, List<String> required, java.util.function.Consumer<Row> sink) {
        int[] rowNumber = {0};
        ColumnarRows.TypeCheck[] types = {null};
        try (BufferAllocator alloc = new RootAllocator()) {
            for (Path shard : shards(fileOrDir)) {
                readShard(shard, alloc, required, rowNumber, row -> {
                    types[0].check(row);
                    sink.accept(row);
                }, columns -> {
                    if (types[0] == null) types[0] = new ColumnarRows.TypeCheck(shownAs, columns, required);
                });
            }
        }
    }

    private static void readShard(Path shard, BufferAllocator alloc, List<String> required, int[] rowNumber,
                                  java.util.function.Consumer<Row> sink,
                                  java.util.function.Consumer<Map<String, String>> schema) {
        int before = rowNumber[0];
        try (FileChannel ch = FileChannel.open(shard, StandardOpenOption.READ);
             ArrowReader reader = isFile(shard) ? new ArrowFileReader(ch, alloc) : new ArrowStreamReader(ch, alloc)) {
            VectorSchemaRoot root = reader.getVectorSchemaRoot();
            Map<String, String> columns = new LinkedHashMap<>();
            for (Field f : root.getSchema().getFields()) columns.put(f.getName(), f.getType().toString());
            ColumnarRows.requireColumns(shard, columns, required);
            schema.accept(columns);
            while (reader.loadNextBatch()) {
                List<FieldVector> vectors = root.getFieldVectors();
                for (int i = 0; i < root.getRowCount(); i++) {
                    Map<String, JsonNode> values = new LinkedHashMap<>();
                    for (FieldVector v : vectors) values.put(v.getName(), node(v.getObject(i)));
                    sink.accept(Row.good(++rowNumber[0], values));
                }
            }
        } catch (IOException | RuntimeException e) {
            if (e instanceof UserError u) throw u;
            throw new UserError(shard + ": not a readable Arrow IPC file or stream after row " + (rowNumber[0] - before)
                    + " of this file: " + e.getMessage(), e);
        }
    }

    private static boolean isFile(Path p) throws IOException {
        try (InputStream in = Files.newInputStream(p)) {
            return Arrays.equals(in.readNBytes(FILE_MAGIC.length), FILE_MAGIC);
        }
    }

    /** Arrow's Java values (Text, JsonStringArrayList, JsonStringHashMap, boxed numbers) as JSON nodes. */
    private static JsonNode node(Object o) {
        if (o == null) return NullNode.getInstance();
        if (o instanceof Text t) return TextNode.valueOf(t.toString());
        if (o instanceof CharSequence s) return TextNode.valueOf(s.toString());
        if (o instanceof List<?> list) {
            ArrayNode a = JsonNodeFactory.instance.arrayNode(list.size());
            for (Object x : list) a.add(node(x));
            return a;
        }
        if (o instanceof Map<?, ?> map) {
            ObjectNode n = JsonNodeFactory.instance.objectNode();
            for (Map.Entry<?, ?> e : map.entrySet()) n.set(String.valueOf(e.getKey()), node(e.getValue()));
            return n;
        }
        if (o instanceof Number || o instanceof Boolean) return JSON.valueToTree(o);
        if (o instanceof byte[] b) return JsonNodeFactory.instance.binaryNode(b);
        return TextNode.valueOf(o.toString());
    }
}
