package dev.jtune.peft;

import dev.jtune.model.ProjectionAdapter;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * One module's low-rank update: {@code delta(x) = scaling · B (A dropout(x))} with A (r, in) and
 * B (out, r), added to the frozen module's output. Same layout as PEFT's lora_A / lora_B weights, for
 * nn.Linear and GPT-2's Conv1D alike.
 */
public final class LoraAdapter implements ProjectionAdapter {
    private final Tensor a;          // (r, in)
    private final Tensor b;          // (out, r)
    private final double scaling;
    private final double dropout;
    private boolean closed;

    public LoraAdapter(Tensor a, Tensor b, double scaling, double dropout) {
        this.a = a;
        this.b = b;
        this.scaling = scaling;
        this.dropout = dropout;
    }

    public Tensor a() {
        return a;
    }

    public Tensor b() {
        return b;
    }

    public double scaling() {
        return scaling;
    }

    /** x (…, in) -> (…, out); dropout only while training. */
    @Override
    public Tensor delta(Tensor x, boolean training) {
        Tensor in = training && dropout > 0 ? torch.dropout(x, dropout, true) : x;
        return torch.linear(torch.linear(in, a), b).mul(new Scalar(scaling));
    }

    /**
     * Releases the one reference to A and B their maker took (PeftAdapter.load, Lora.create retain them past their
     * PointerScope): freed now unless an open scope or another handle still holds them. Closed by the model it is
     * attached to ({@code CausalLM.close}). Idempotent.
     */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        a.releaseReference();
        b.releaseReference();
    }

    /** scaling · B A, shaped like an nn.Linear weight (out, in). */
    public Tensor weightDelta() {
        return torch.matmul(b.to(org.bytedeco.pytorch.global.torch.ScalarType.Float),
                a.to(org.bytedeco.pytorch.global.torch.ScalarType.Float)).mul(new Scalar(scaling));
    }
}
