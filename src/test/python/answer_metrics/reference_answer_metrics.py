#!/usr/bin/env python3
"""Reference values for jtune's answer metrics (dev.jtune.eval), written to
src/test/resources/answer-metrics/reference.json and read by AnswerMetricsReferenceTest.

sacrebleu and rouge-score cannot be installed where this was written (no PyPI), so their published algorithms are
transcribed here, line for line, from these files:

- SQuAD v1.1 evaluate-v1.1.py: normalize_answer, f1_score, exact_match_score.
- google-research/rouge, rouge_score 0.1.2: tokenize.py (tokenize, default tokenizer, no stemmer) and
  rouge_scorer.py (_lcs_table, _score_lcs) and scoring.py (fmeasure).
- mjpost/sacrebleu 2.x: tokenizers/tokenizer_13a.py, tokenizers/tokenizer_re.py (TokenizerRegexp),
  metrics/helpers.py (extract_all_word_ngrams, extract_all_char_ngrams), metrics/bleu.py (BLEU with
  smooth_method='exp', _preprocess_segment's rstrip, _compute_segment_statistics, compute_bleu, my_log) and
  metrics/chrf.py (CHRF defaults char_order=6, word_order=0, beta=2, eps_smoothing=False: _get_match_statistics,
  _compute_f_score).

Independent cross-checks with NLTK (Debian python3-nltk 3.8, `apt-get install python3-nltk`), asserted here:
- BLEU: nltk.translate.bleu_score.corpus_bleu over the same 13a tokens with SmoothingFunction().method3 (NIST
  geometric smoothing = sacreBLEU's 'exp') equals our BLEU / 100 on every corpus whose hypotheses have at least one
  n-gram of each order (where some have none, sacreBLEU stops at that order and gives ~0 while NLTK smooths it).
- chrF: NLTK's corpus_chrf is a different aggregate (the mean over segments of the mean over orders of per-order
  F-scores, chrF++.py style, default beta 3), so its score is not compared; per segment and order, the precision
  and recall from nltk's chrf_precision_recall_fscore_support (on whitespace-free text) must equal ours.
- ROUGE-L: nltk has no ROUGE; our LCS is checked against difflib-free brute force on short cases.

Run with /usr/bin/python3 (Debian's, which has nltk): python3 src/test/python/answer_metrics/reference_answer_metrics.py
"""
import json
import math
import re
import string
import sys
from collections import Counter
from pathlib import Path

# ---------------------------------------------------------------- the cases: (prediction, reference, language)
CASES = [
    ("The capital of France is Paris.", "Paris is the capital of France.", "en"),
    ("Paris", "paris", "en"),
    ("An apple a day keeps the doctor away!", "an apple a day keeps the doctor away", "en"),
    ("It costs $1,000.50 (about 900 euros).", "It costs 1,000.50 dollars, about 900 euros.", "en"),
    ("Don't panic: it's only a test-case, isn't it?", "Do not panic; it is only a test case.", "en"),
    ("Pages 3-4 & 7", "pages 3 - 4 &amp; 7", "en"),
    ("the the the the", "the cat is on the mat", "en"),
    ("", "Something the model should have said.", "en"),
    ("Well...\nthe end-\nof the line", "well, the end of the line", "en"),
    ("Résumé: naïve café owners", "resume: naive cafe owners", "en"),
    ("La capital de España es Madrid.", "Madrid es la capital de España.", "es"),
    ("¿Qué hora es? Son las 3:45.", "¿Qué hora es? Son las tres y cuarenta y cinco.", "es"),
    ("¡Feliz cumpleaños, José!", "¡Feliz cumpleaños José!", "es"),
    ("El niño comió piña y jalapeños.", "El nino comio pina y jalapenos.", "es"),
    ("«Cien años de soledad» — García Márquez", "Cien años de soledad, de Gabriel García Márquez.", "es"),
    ("ÉL ESTÁ AQUÍ", "él está aquí", "es"),
    ("Un hombre, una mujer y el perro.", "un hombre y una mujer con el perro", "es"),
    ("El 1.º de mayo de 2024, a las 10:00 h.", "El 1 de mayo de 2024 a las 10.00", "es"),
    ("Straße\u00a0und Fluss", "Strasse und Fluss", "en"),
    ("a_b an_c the", "a b an c", "en"),
]


# ---------------------------------------------------------------- SQuAD v1.1 (evaluate-v1.1.py)
def normalize_answer(s):
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return normalize_answer(prediction) == normalize_answer(ground_truth)


# ---------------------------------------------------------------- rouge_score 0.1.2 (tokenize.py, rouge_scorer.py)
NON_ALPHANUM_RE = re.compile(r"[^a-z0-9]+")
SPACES_RE = re.compile(r"\s+")
VALID_TOKEN_RE = re.compile(r"^[a-z0-9]+$")


def rouge_tokenize(text):
    text = text.lower()
    text = NON_ALPHANUM_RE.sub(" ", text)
    tokens = SPACES_RE.split(text)
    return [x for x in tokens if VALID_TOKEN_RE.match(x)]


def _lcs_table(ref, can):
    rows, cols = len(ref), len(can)
    lcs_table = [[0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            if ref[i - 1] == can[j - 1]:
                lcs_table[i][j] = lcs_table[i - 1][j - 1] + 1
            else:
                lcs_table[i][j] = max(lcs_table[i - 1][j], lcs_table[i][j - 1])
    return lcs_table


def fmeasure(precision, recall):
    if precision + recall > 0:
        return 2 * precision * recall / (precision + recall)
    return 0.0


def score_lcs(target_tokens, prediction_tokens):
    if not target_tokens or not prediction_tokens:
        return 0.0
    lcs_length = _lcs_table(target_tokens, prediction_tokens)[-1][-1]
    return fmeasure(lcs_length / len(prediction_tokens), lcs_length / len(target_tokens))


def rouge_l(prediction, reference):   # RougeScorer(['rougeL']).score(target=reference, prediction=prediction)
    return score_lcs(rouge_tokenize(reference), rouge_tokenize(prediction))


# ---------------------------------------------------------------- sacrebleu 2.x: 13a, BLEU, chrF
TOKENIZER_RE = [
    (re.compile(r'([\{-\~\[-\` -\&\(-\+\:-\@\/])'), r' \1 '),
    (re.compile(r'([^0-9])([\.,])'), r'\1 \2 '),
    (re.compile(r'([\.,])([^0-9])'), r' \1 \2'),
    (re.compile(r'([0-9])(-)'), r'\1 \2 '),
]


def tokenize_13a(line):
    line = line.replace('<skipped>', '')
    line = line.replace('-\n', '')
    line = line.replace('\n', ' ')
    if '&' in line:
        line = line.replace('&quot;', '"')
        line = line.replace('&amp;', '&')
        line = line.replace('&lt;', '<')
        line = line.replace('&gt;', '>')
    line = " {} ".format(line)
    for (_re, repl) in TOKENIZER_RE:
        line = _re.sub(repl, line)
    return ' '.join(line.strip().split())


def bleu_preprocess(sent):   # BLEU._preprocess_segment, lowercase=False
    return tokenize_13a(sent.rstrip())


def extract_all_word_ngrams(line, min_order, max_order):
    counter = Counter()
    tokens = line.split()
    for n in range(min_order, max_order + 1):
        for i in range(0, len(tokens) - n + 1):
            counter[tuple(tokens[i: i + n])] += 1
    return counter, len(tokens)


MAX_NGRAM_ORDER = 4


def bleu_segment_statistics(hypothesis, reference):
    ref_ngrams, ref_len = extract_all_word_ngrams(reference, 1, MAX_NGRAM_ORDER)
    hyp_ngrams, hyp_len = extract_all_word_ngrams(hypothesis, 1, MAX_NGRAM_ORDER)
    correct = [0] * MAX_NGRAM_ORDER
    total = correct[:]
    for hyp_ngram, hyp_count in hyp_ngrams.items():
        n = len(hyp_ngram) - 1
        total[n] += hyp_count
        if hyp_ngram in ref_ngrams:
            correct[n] += min(hyp_count, ref_ngrams[hyp_ngram])
    return [hyp_len, ref_len] + correct + total


def my_log(num):
    if num == 0.0:
        return -9999999999
    return math.log(num)


def compute_bleu(correct, total, sys_len, ref_len):   # smooth_method='exp', effective_order=False
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    precisions = [0.0] * MAX_NGRAM_ORDER
    if not any(correct):
        return 0.0
    smooth_mteval = 1.
    eff_order = MAX_NGRAM_ORDER
    for n in range(1, len(precisions) + 1):
        if total[n - 1] == 0:
            break
        if correct[n - 1] == 0:
            smooth_mteval *= 2
            precisions[n - 1] = 100. / (smooth_mteval * total[n - 1])
        else:
            precisions[n - 1] = 100. * correct[n - 1] / total[n - 1]
    return bp * math.exp(sum([my_log(p) for p in precisions[:eff_order]]) / eff_order)


def corpus_bleu(hyps, refs):
    stats = [0] * (2 + 2 * MAX_NGRAM_ORDER)
    for h, r in zip(hyps, refs):
        for i, v in enumerate(bleu_segment_statistics(bleu_preprocess(h), bleu_preprocess(r))):
            stats[i] += v
    return compute_bleu(stats[2:2 + MAX_NGRAM_ORDER], stats[2 + MAX_NGRAM_ORDER:], stats[0], stats[1])


CHAR_ORDER, BETA = 6, 2


def extract_all_char_ngrams(line, max_order, include_whitespace=False):
    counters = []
    if not include_whitespace:
        line = ''.join(line.split())
    for order in range(1, max_order + 1):
        counters.append(Counter([line[i:i + order] for i in range(len(line) - order + 1)]))
    return counters


def chrf_match_statistics(hyp_ngrams, ref_ngrams):
    match_count, hyp_count = 0, 0
    for ng, count in hyp_ngrams.items():
        hyp_count += count
        if ng in ref_ngrams:
            match_count += min(count, ref_ngrams[ng])
    return [hyp_count if ref_ngrams else 0, sum(ref_ngrams.values()), match_count]


def chrf_segment_statistics(hypothesis, reference):
    stats = []
    for h, r in zip(extract_all_char_ngrams(hypothesis, CHAR_ORDER), extract_all_char_ngrams(reference, CHAR_ORDER)):
        stats.extend(chrf_match_statistics(h, r))
    return stats


def chrf_f_score(statistics):   # eps_smoothing=False
    eps = 1e-16
    score = 0.0
    effective_order = 0
    factor = BETA ** 2
    avg_prec, avg_rec = 0.0, 0.0
    for i in range(CHAR_ORDER):
        n_hyp, n_ref, n_match = statistics[3 * i: 3 * i + 3]
        prec = n_match / n_hyp if n_hyp > 0 else eps
        rec = n_match / n_ref if n_ref > 0 else eps
        denom = factor * prec + rec
        score += ((1 + factor) * prec * rec / denom) if denom > 0 else eps
        if n_hyp > 0 and n_ref > 0:
            avg_prec += prec
            avg_rec += rec
            effective_order += 1
    if effective_order == 0:
        avg_prec = avg_rec = 0.0
    else:
        avg_prec /= effective_order
        avg_rec /= effective_order
    if avg_prec + avg_rec:
        score = (1 + factor) * avg_prec * avg_rec
        score /= ((factor * avg_prec) + avg_rec)
        return 100 * score
    return 0.0


def corpus_chrf(hyps, refs):
    stats = [0] * (3 * CHAR_ORDER)
    for h, r in zip(hyps, refs):
        for i, v in enumerate(chrf_segment_statistics(h, r)):
            stats[i] += v
    return chrf_f_score(stats)


# ---------------------------------------------------------------- NLTK cross-checks
def nltk_checks(corpora):
    from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu, SmoothingFunction
    from nltk.translate.chrf_score import chrf_precision_recall_fscore_support
    checked_bleu = 0
    for c in corpora:
        hyps = [bleu_preprocess(CASES[i][0]).split() for i in c["indices"]]
        refs = [[bleu_preprocess(CASES[i][1]).split()] for i in c["indices"]]
        if any(len(h) < MAX_NGRAM_ORDER for h in hyps) or c["bleu"] == 0.0:
            continue   # sacreBLEU stops at an order with no n-grams; NLTK smooths it: not comparable
        ours = c["bleu"] / 100
        theirs = nltk_corpus_bleu(refs, hyps, smoothing_function=SmoothingFunction().method3)
        assert abs(ours - theirs) <= 1e-12 + 1e-9 * abs(theirs), (c["name"], ours, theirs)
        c["nltk_bleu_method3"] = theirs
        checked_bleu += 1
    checked_chrf = 0
    for pred, ref, _ in CASES:
        h, r = ''.join(pred.split()), ''.join(ref.split())
        stats = chrf_segment_statistics(pred, ref)
        for n in range(1, CHAR_ORDER + 1):
            n_hyp, n_ref, n_match = stats[3 * (n - 1): 3 * n]
            if n_hyp == 0 or n_ref == 0:
                continue
            prec, rec, _, tp = chrf_precision_recall_fscore_support(list(r), list(h), n, beta=BETA)
            assert tp == n_match and abs(prec - n_match / n_hyp) < 1e-15 and abs(rec - n_match / n_ref) < 1e-15, (pred, n)
            checked_chrf += 1
    return checked_bleu, checked_chrf


def brute_lcs(a, b):
    from itertools import combinations
    for k in range(min(len(a), len(b)), 0, -1):
        subs = set(combinations(a, k))
        if any(s in subs for s in combinations(b, k)):
            return k
    return 0


def main():
    out_file = Path(__file__).resolve().parents[2] / "resources" / "answer-metrics" / "reference.json"
    cases = []
    for pred, ref, lang in CASES:
        rp, rr = rouge_tokenize(pred), rouge_tokenize(ref)
        if len(rp) <= 10 and len(rr) <= 10:
            assert brute_lcs(rr, rp) == _lcs_table(rr, rp)[-1][-1]
        cases.append({
            "prediction": pred, "reference": ref, "language": lang,
            "squad_normalized_prediction": normalize_answer(pred),
            "squad_normalized_reference": normalize_answer(ref),
            "exact_match": 1.0 if exact_match_score(pred, ref) else 0.0,
            "token_f1": float(f1_score(pred, ref)),
            "rouge_tokens_prediction": rp, "rouge_tokens_reference": rr,
            "rouge_l": rouge_l(pred, ref),
            "tokens_13a_prediction": bleu_preprocess(pred).split(),
            "tokens_13a_reference": bleu_preprocess(ref).split(),
            "chrf_statistics": chrf_segment_statistics(pred, ref),
        })
    groups = [("all", list(range(len(CASES)))),
              ("english", [i for i, c in enumerate(CASES) if c[2] == "en"]),
              ("spanish", [i for i, c in enumerate(CASES) if c[2] == "es"])]
    groups += [("case %d" % i, [i]) for i in range(len(CASES))]
    corpora = []
    for name, idx in groups:
        hyps, refs = [CASES[i][0] for i in idx], [CASES[i][1] for i in idx]
        corpora.append({
            "name": name, "indices": idx,
            "exact_match": 100 * sum(1.0 if exact_match_score(h, r) else 0.0 for h, r in zip(hyps, refs)) / len(idx),
            "token_f1": 100 * sum(f1_score(h, r) for h, r in zip(hyps, refs)) / len(idx),
            "rouge_l": 100 * sum(rouge_l(h, r) for h, r in zip(hyps, refs)) / len(idx),
            "bleu": corpus_bleu(hyps, refs),
            "chrf": corpus_chrf(hyps, refs),
        })
    checked_bleu, checked_chrf = nltk_checks(corpora)
    doc = {
        "about": "made by src/test/python/answer_metrics/reference_answer_metrics.py; scores on 0..100 for corpora, "
                 "0..1 per case; see the script for the reference implementations followed and the NLTK cross-checks",
        "nltk_checks": {"bleu_corpora": checked_bleu, "chrf_segment_orders": checked_chrf},
        "cases": cases, "corpora": corpora,
    }
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print("wrote %s: %d cases, %d corpora; NLTK agreed on BLEU for %d corpora and chrF P/R for %d segment orders"
          % (out_file, len(cases), len(corpora), checked_bleu, checked_chrf))


if __name__ == "__main__":
    sys.exit(main())
