package dev.jtune.serve;

import dev.jtune.data.ChatTemplate;
import dev.jtune.kernels.Ops;
import dev.jtune.model.CausalLM;
import dev.jtune.model.ProjectionAdapter;
import dev.jtune.peft.AdapterLoader;
import dev.jtune.peft.LoraAdapter;
import dev.jtune.peft.PeftAdapter;
import dev.jtune.tokenizer.HfTokenizer;
import dev.jtune.util.UserError;
import org.bytedeco.pytorch.Device;
import org.bytedeco.pytorch.global.torch.ScalarType;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * What one server answers for: one base model and any number of LoRA adapters on it, each a model id a request can
 * name. The base is loaded once; every adapter's A and B are attached through one {@link MultiLoraProjection} per
 * linear module, so a batch can mix the base and several adapters row by row.
 *
 * <p>Each id has its own tokenizer and chat template: an adapter directory that fine-tuning saved tokenizer files in
 * brings its own (as {@code jtune generate --adapter} does), otherwise the base model's.
 */
public final class ServedModels implements AutoCloseable {
    /** One model id: {@code adapter} is -1 for the base, else the adapter's index. */
    public record Entry(String id, int adapter, HfTokenizer tokenizer, ChatTemplate template) {
        /** Renders chat messages with this id's template, generation prompt added (Jinjava rendering is serialised). */
        public String renderChat(List<ChatTemplate.Message> messages) {
            synchronized (template) {
                return template.render(messages, true);
            }
        }
    }

    private final CausalLM model;
    private final RowAdapters rows;
    private final Map<String, Entry> entries;
    private final List<Map<String, LoraAdapter>> adapterSets;

    private ServedModels(CausalLM model, RowAdapters rows, Map<String, Entry> entries, List<Map<String, LoraAdapter>> adapterSets) {
        this.model = model;
        this.rows = rows;
        this.entries = entries;
        this.adapterSets = adapterSets;
    }

    /**
     * Loads the base from {@code modelDir} under the id {@code baseId} and each adapter directory under its name.
     * Adapter names must be unique and differ from the base's id.
     */
    public static ServedModels load(Path modelDir, String baseId, Map<String, Path> adapters, ScalarType dtype, Device device, Ops kernels) {
        Map<String, Entry> entries = new LinkedHashMap<>();
        List<Map<String, LoraAdapter>> sets = new ArrayList<>();
        List<HfTokenizer> tokenizers = new ArrayList<>();
        CausalLM model = AdapterLoader.load(modelDir, null, dtype, device, kernels);
        try {
            HfTokenizer baseTok = HfTokenizer.load(modelDir);
            tokenizers.add(baseTok);
            baseTok.requireFitsModel(model.config().vocabSize(), model.config().where());
            entries.put(baseId, new Entry(baseId, -1, baseTok, ChatTemplate.forTokenizer(baseTok)));
            for (Map.Entry<String, Path> a : adapters.entrySet()) {
                String name = a.getKey();
                if (entries.containsKey(name)) throw new UserError("--adapter " + name + "=" + a.getValue() + ": the name '" + name + "' is already served");
                if (!AdapterLoader.isAdapterDir(a.getValue())) {
                    throw new UserError("--adapter " + name + "=" + a.getValue() + ": no adapter_config.json there; expected a PEFT adapter directory");
                }
                sets.add(PeftAdapter.load(a.getValue(), model.config(), device, false).adapters());
                Path tokDir = AdapterLoader.tokenizerDir(modelDir, a.getValue());
                HfTokenizer tok = baseTok;
                if (!tokDir.equals(modelDir)) {
                    tok = HfTokenizer.load(tokDir);
                    tokenizers.add(tok);
                    tok.requireFitsModel(model.config().vocabSize(), model.config().where());
                }
                entries.put(name, new Entry(name, sets.size() - 1, tok, ChatTemplate.forTokenizer(tok)));
            }
        } catch (RuntimeException e) {
            for (Map<String, LoraAdapter> s : sets) s.values().forEach(LoraAdapter::close);
            tokenizers.forEach(HfTokenizer::close);
            model.close();
            throw e;
        }
        RowAdapters rows = new RowAdapters(device);
        // one projection per module any adapter touches, holding each adapter's A and B for it (or null)
        TreeSet<String> modules = new TreeSet<>();
        for (Map<String, LoraAdapter> s : sets) modules.addAll(s.keySet());
        Map<String, ProjectionAdapter> projections = new LinkedHashMap<>();
        for (String module : modules) {
            LoraAdapter[] per = new LoraAdapter[sets.size()];
            for (int k = 0; k < sets.size(); k++) per[k] = sets.get(k).get(module);
            projections.put(module, new MultiLoraProjection(per, rows));
        }
        model.setAdapters(projections);
        return new ServedModels(model, rows, entries, sets);
    }

    /** The id's entry; a 404 in OpenAI's shape for an id this server does not have. */
    public Entry entry(String id) {
        Entry e = entries.get(id);
        if (e == null) throw ApiError.unknownModel(id, entries.keySet());
        return e;
    }

    /** Model ids in the order given: the base first. */
    public List<String> ids() {
        return List.copyOf(entries.keySet());
    }

    public CausalLM model() {
        return model;
    }

    RowAdapters rows() {
        return rows;
    }

    @Override
    public void close() {
        model.close();   // closes the projections (no-ops) and the base weights
        for (Map<String, LoraAdapter> s : adapterSets) s.values().forEach(LoraAdapter::close);
        java.util.Set<HfTokenizer> closed = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        for (Entry e : entries.values()) if (closed.add(e.tokenizer())) e.tokenizer().close();
    }
}
