package dev.jtune.train.preference;

import dev.jtune.config.PreferenceSection;
import dev.jtune.config.TrainingSection.Method;
import dev.jtune.util.Tensors;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The preference losses, restated from TRL's trainers (DPOTrainer.dpo_loss, ORPOTrainer.odds_ratio_loss,
 * CPOTrainer.cpo_loss with loss_type simpo, KTOTrainer.kto_loss), on a micro-batch of n items laid out as 2n rows
 * (pairs: chosen_0..chosen_{n-1}, rejected_0..rejected_{n-1}; KTO: completions, then their KL rows).
 *
 * <p>With c, r the policy's chosen / rejected completion log-probabilities (sums over tokens; averaged over the
 * completion's tokens for ipo, orpo and simpo, as TRL's {@code average_log_prob}) and c₀, r₀ the reference's:
 * <ul>
 * <li>dpo: z = β·((c − r) − (c₀ − r₀)); sigmoid −(1−ε)·logσ(z) − ε·logσ(−z); robust ((1−ε)·(−logσ(z)) + ε·logσ(−z)) / (1−2ε);
 *     hinge relu(1 − z); ipo ((c − r) − (c₀ − r₀) − 1/(2β))²; rewards β(c − c₀), β(r − r₀); with rpo_alpha, + α·NLL(chosen);</li>
 * <li>simpo: z = β·(c − r − γ/β), −(1−ε)·logσ(z) − ε·logσ(−z), + cpo_alpha·NLL(chosen); rewards βc, βr;</li>
 * <li>orpo: NLL(chosen) − β·logσ(log odds), log odds = (c − r) − (log(1 − e^c) − log(1 − e^r)); rewards βc, βr;</li>
 * <li>kto: KL = max(0, mean(KL rows' policy − reference)) over the micro-batch's KL rows of every rank, detached as TRL's kto_loss has it (TRL computes the KL rows
 *     under no_grad; here they share the step's forward, but KL enters the loss as a host number, so no gradient flows
 *     through it: a KL with its graph moves KTO's step-2 loss by 2e-3 and PreferenceReferenceTest fails); desirable w_d·(1 − σ(β(c − c₀ − KL))),
 *     undesirable w_u·(1 − σ(β(KL − (c − c₀)))); mean over the examples.</li>
 * </ul>
 * NLL(chosen) is the chosen completions' token cross-entropy, averaged over their tokens in the micro-batch.
 * {@link #sum} returns the micro-batch's loss times n (the step divides by the pairs of the whole batch).
 */
public final class PreferenceLoss {
    private final Method method;
    private final PreferenceSection p;
    private final double beta;

    /** @param settings the preference section resolved for {@code method} */
    public PreferenceLoss(Method method, PreferenceSection settings) {
        if (!method.preference()) throw new IllegalArgumentException(method + " is not a preference method");
        this.method = method;
        this.p = settings;
        this.beta = settings.beta();
    }

    public Method method() {
        return method;
    }

    /** Whether the method compares with a reference model (dpo unless reference_free, kto). */
    public boolean needsReference() {
        return method == Method.KTO || (method == Method.DPO && !Boolean.TRUE.equals(p.referenceFree()));
    }

    /** Whether log-probabilities are averaged over the completion's tokens (TRL's average_log_prob). */
    boolean averaged() {
        return method == Method.ORPO || method == Method.SIMPO
                || (method == Method.DPO && p.lossType() == PreferenceSection.LossType.IPO);
    }

    /**
     * @param policy    (2n,) float32 summed completion log-probabilities, with their graph
     * @param reference (2n,) float32 without graph, or null (no reference: zeros)
     * @param desirable KTO: each item's label (null for pairs)
     * @param metrics   receives the micro-batch's metrics
     * @param overRanks KTO, data parallel: sums a vector over the ranks (each rank calls it once per micro-batch), so the
     *                  KL estimate is the global batch's as TRL gathers it; the identity in one process or in evaluation
     * @return 0-d float32: the micro-batch's loss times its n items
     */
    public Tensor sum(Tensor policy, Tensor reference, SequenceLogps.Rows rows, boolean[] desirable, StepMetrics metrics,
                      java.util.function.UnaryOperator<double[]> overRanks) {
        int n = rows.size() / 2;
        float[] countF = new float[rows.size()];
        for (int i = 0; i < countF.length; i++) countF[i] = rows.count()[i];
        Tensor counts = Tensors.floats(countF).to(policy.device(), torch.ScalarType.Float);   // (2n,)
        Tensor lp = averaged() ? policy.div(counts) : policy;                                // (2n,)
        Tensor ref = reference == null ? null : averaged() ? reference.div(counts) : reference;
        // one host read of the (detached) values the metrics and KTO's KL need
        double[] host = doubles(ref == null ? lp.detach() : torch.cat(new TensorVector(lp.detach(), ref)));
        double[] refHost = new double[2 * n];
        if (ref != null) System.arraycopy(host, 2 * n, refHost, 0, 2 * n);
        Tensor c = lp.narrow(0, 0, n), r = lp.narrow(0, n, n);                               // (n,) each
        Tensor loss = switch (method) {
            case DPO -> dpo(c, r, ref, n, policy, rows);
            case SIMPO -> simpo(c, r, n, policy, rows, metrics);
            case ORPO -> orpo(c, r, n, host, policy, rows, metrics);
            case KTO -> kto(c, ref, n, host, refHost, desirable, metrics, overRanks);
            case SFT -> throw new IllegalStateException();
        };
        if (method != Method.KTO) pairMetrics(host, refHost, n, metrics);
        if (method == Method.DPO && p.rpoAlpha() != null) metrics.add("nll_loss", nllValue(policy, rows, n), n);
        return loss;
    }

    private Tensor dpo(Tensor c, Tensor r, Tensor ref, int n, Tensor policy, SequenceLogps.Rows rows) {
        Tensor logits = c.sub(r);                                                            // (n,)
        if (ref != null) logits = logits.sub(ref.narrow(0, 0, n).sub(ref.narrow(0, n, n)));
        double ls = p.labelSmoothing();
        Tensor z = logits.mul(new Scalar(beta));
        Tensor losses = switch (p.lossType()) {
            case SIGMOID -> torch.log_sigmoid(z).mul(new Scalar(-(1 - ls))).sub(torch.log_sigmoid(z.neg()).mul(new Scalar(ls)));
            case ROBUST -> torch.log_sigmoid(z).mul(new Scalar(-(1 - ls))).add(torch.log_sigmoid(z.neg()).mul(new Scalar(ls)))
                    .div(new Scalar(1 - 2 * ls));
            case HINGE -> torch.relu(z.neg().add(new Scalar(1.0)));
            case IPO -> {
                Tensor d = logits.sub(new Scalar(1 / (2 * beta)));
                yield d.mul(d);
            }
        };
        Tensor loss = losses.sum();
        if (p.rpoAlpha() != null) loss = loss.add(nll(policy, rows, n).mul(new Scalar(p.rpoAlpha() * n)));
        return loss;
    }

    private Tensor simpo(Tensor c, Tensor r, int n, Tensor policy, SequenceLogps.Rows rows, StepMetrics metrics) {
        double ls = p.labelSmoothing();
        Tensor z = c.sub(r).sub(new Scalar(p.simpoGamma() / beta)).mul(new Scalar(beta));  // (n,)
        Tensor loss = torch.log_sigmoid(z).mul(new Scalar(-(1 - ls))).sub(torch.log_sigmoid(z.neg()).mul(new Scalar(ls))).sum();
        if (p.cpoAlpha() > 0) {
            loss = loss.add(nll(policy, rows, n).mul(new Scalar(p.cpoAlpha() * n)));
            metrics.add("nll_loss", nllValue(policy, rows, n), n);
        }
        return loss;
    }

    private Tensor orpo(Tensor c, Tensor r, int n, double[] host, Tensor policy, SequenceLogps.Rows rows, StepMetrics metrics) {
        // log odds(y) = log p − log(1 − p), p the (averaged) completion probability
        Tensor logOdds = c.sub(r).sub(torch.log1p(c.exp().neg()).sub(torch.log1p(r.exp().neg())));   // (n,)
        Tensor ratio = torch.log_sigmoid(logOdds);                                                     // (n,)
        Tensor loss = nll(policy, rows, n).mul(new Scalar((double) n)).sub(ratio.sum().mul(new Scalar(beta)));
        double[] lo = doubles(torch.cat(new TensorVector(ratio.detach(), logOdds.detach())));
        for (int i = 0; i < n; i++) {
            metrics.add("log_odds_ratio", lo[i], 1);
            metrics.add("log_odds_chosen", lo[n + i], 1);
        }
        metrics.add("nll_loss", nllValue(policy, rows, n), n);
        return loss;
    }

    private Tensor kto(Tensor c, Tensor ref, int n, double[] host, double[] refHost, boolean[] desirable, StepMetrics metrics,
                       java.util.function.UnaryOperator<double[]> overRanks) {
        double klSum = 0;
        for (int i = n; i < 2 * n; i++) klSum += host[i] - refHost[i];
        double[] global = overRanks.apply(new double[] {klSum, n});   // TRL: gather_for_metrics(kl).mean() over the processes
        double kl = Math.max(0, global[0] / global[1]);
        Tensor logratio = ref == null ? c : c.sub(ref.narrow(0, 0, n));                       // (n,)
        float[] sign = new float[n], weight = new float[n];
        for (int i = 0; i < n; i++) {
            sign[i] = desirable[i] ? 1 : -1;   // desirable: σ(β(ρ − KL)); undesirable: σ(β(KL − ρ))
            weight[i] = (float) (double) (desirable[i] ? p.desirableWeight() : p.undesirableWeight());
        }
        Tensor s = Tensors.floats(sign).to(c.device(), torch.ScalarType.Float);
        Tensor w = Tensors.floats(weight).to(c.device(), torch.ScalarType.Float);
        Tensor losses = torch.sigmoid(logratio.sub(new Scalar(kl)).mul(s).mul(new Scalar(beta))).neg().add(new Scalar(1.0)).mul(w);
        for (int i = 0; i < n; i++) {
            String side = desirable[i] ? "chosen" : "rejected";
            metrics.add("rewards/" + side, beta * (host[i] - refHost[i]), 1);
            metrics.add("logps/" + side, host[i], 1);
        }
        metrics.add("kl", kl, 1);
        return losses.sum();
    }

    /** The pair metrics (TRL's names), from the host copies of the (averaged) log-probabilities. */
    private void pairMetrics(double[] lp, double[] ref, int n, StepMetrics metrics) {
        boolean relative = method == Method.DPO;   // orpo and simpo reward the policy's log-probability itself
        for (int i = 0; i < n; i++) {
            double rc = beta * (lp[i] - (relative ? ref[i] : 0)), rr = beta * (lp[n + i] - (relative ? ref[n + i] : 0));
            metrics.add("rewards/chosen", rc, 1);
            metrics.add("rewards/rejected", rr, 1);
            metrics.add("rewards/accuracies", rc > rr ? 1 : 0, 1);
            metrics.add("rewards/margins", rc - rr, 1);
            metrics.add("logps/chosen", lp[i], 1);
            metrics.add("logps/rejected", lp[n + i], 1);
        }
    }

    /** NLL of the chosen completions: −(sum of their token log-probs) / (their tokens); 0-d, with graph. */
    private static Tensor nll(Tensor policy, SequenceLogps.Rows rows, int n) {
        return policy.narrow(0, 0, n).sum().neg().div(new Scalar((double) chosenTokens(rows, n)));
    }

    private static double nllValue(Tensor policy, SequenceLogps.Rows rows, int n) {
        return -policy.narrow(0, 0, n).detach().sum().item_double() / chosenTokens(rows, n);
    }

    private static long chosenTokens(SequenceLogps.Rows rows, int n) {
        long t = 0;
        for (int i = 0; i < n; i++) t += rows.count()[i];
        return Math.max(1, t);
    }

    /** The values of a 1-D tensor as doubles (one host copy). */
    static double[] doubles(Tensor t) {
        Tensor c = t.detach().to(new org.bytedeco.pytorch.Device("cpu"), torch.ScalarType.Double).contiguous();
        double[] out = new double[(int) c.numel()];
        new org.bytedeco.javacpp.DoublePointer(c.data_ptr_double()).capacity(out.length).get(out);
        return out;
    }
}
