/**
 * Scoring generated answers against references as the common Python packages do (SQuAD exact match and F1,
 * sacreBLEU's BLEU and chrF, ROUGE-L). Internal: not a stable API.
 */
package dev.jtune.eval;
