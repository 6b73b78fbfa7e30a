// Next-character and next-word suggestions and a greedy continuation, from a character model, in the
// page: the same beam search as the Python app (runtime/apps/suggest.py, Keyboard), on edgernn.mjs
// streams. Every beam is a fork of its parent (the typed prefix is never re-run).
//
//   const kb = new Keyboard(engine);
//   await kb.type("And God sa");
//   const [words, next] = await kb.suggest(3);   // [{word, prob}] completions, then the next words
//   const more = await kb.continuation(60);      // greedy characters after the typed text

import { InputError } from "./wire.mjs";

const UNDO = 64;
export const isWordChar = (c) => /[\p{L}\p{N}]/u.test(c) || c === "'" || c === "-";

export function logSoftmax(logits) {
  let m = -Infinity;
  for (const v of logits) if (v > m) m = v;
  let s = 0;
  for (const v of logits) s += Math.exp(v - m);
  const lse = Math.log(s);
  return Float64Array.from(logits, (v) => v - m - lse);
}

const logaddexp = (a, b) => Math.max(a, b) + Math.log1p(Math.exp(-Math.abs(a - b)));
const argmax = (a) => { let k = 0; for (let i = 1; i < a.length; i++) if (a[i] > a[k]) k = i; return k; };

export class Keyboard {
  constructor(engine, { beam = 6, maxChars = 16 } = {}) {
    const vocab = engine.spec.task && engine.spec.task.vocabulary;
    if (typeof vocab !== "string" || !vocab) throw new InputError("this model has no spec.task.vocabulary: not a character model");
    this.vocab = [...vocab];
    this.index = new Map(this.vocab.map((c, i) => [c, i]));
    this.wordChar = this.vocab.map(isWordChar);
    const words = engine.spec.task.words;
    this.lexicon = Array.isArray(words) ? { words: new Set(words), prefixes: new Set(words.flatMap((w) => [...w].map((_, i) => w.slice(0, i)).concat([w]))) } : null;
    this.engine = engine; this.stream = engine.stream(); this.beam = beam; this.maxChars = maxChars;
    this.word = ""; this.logp = null; this.logits = null; this.undo = [];
  }

  // Typed text, one step per character; InputError (nothing typed) for a character the model lacks.
  async type(text) {
    const unknown = [...new Set([...text].filter((c) => !this.index.has(c)))];
    if (unknown.length) throw new InputError(`typed text: characters ${JSON.stringify(unknown)} are not in the model's vocabulary`);
    for (const c of text) {
      this.undo.push([this.stream.fork(), this.word, this.logp, this.logits]);
      if (this.undo.length > UNDO) this.undo.shift();
      this.logits = await this.stream.step(this.index.get(c));
      this.logp = logSoftmax(this.logits);
      this.word = isWordChar(c) ? this.word + c : "";
    }
  }

  backspace() { if (this.undo.length) [this.stream, this.word, this.logp, this.logits] = this.undo.pop(); return this.undo.length > 0; }

  reset() { this.stream = this.engine.stream(); this.word = ""; this.logp = null; this.logits = null; this.undo = []; }

  // The k most likely next characters: [{char, prob}].
  nextChars(k = 3) {
    if (!this.logp) return [];
    return Array.from(this.logp, (v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, k)
      .map(([v, i]) => ({ char: this.vocab[i], prob: Math.exp(v) }));
  }

  wordIsKnown() { return this.lexicon === null || this.lexicon.prefixes.has(this.word); }

  // [completions of the current word, the next words after the most likely completion].
  async suggest(k = 3) {
    const done = await this.complete(k);
    if (!done.length) return [[], []];
    const best = done[0], after = best.stream.fork();
    const logp = logSoftmax(await after.step(best.boundary));
    const next = await this.search({ score: 0, chars: "", stream: after, logp }, "", k);
    const out = (ds) => ds.map((d) => ({ word: d.word, prob: Math.exp(d.score) }));
    return [out(done), out(next)];
  }

  async complete(k) {
    if (!this.logp || !this.wordIsKnown()) return [];
    return this.search({ score: 0, chars: "", stream: this.stream.fork(), logp: this.logp }, this.word, k);
  }

  // Greedy characters after the typed text (temperature 0, as the Python app's generate(temperature=0)).
  async continuation(n) {
    if (!this.logits) return "";
    const s = this.stream.fork();
    let logits = this.logits, text = "";
    for (let i = 0; i < n; i++) {
      const c = argmax(logits);
      text += this.vocab[c];
      logits = await s.step(c);
    }
    return text;
  }

  allowed(stem, logp) {
    if (this.lexicon === null) return logp;
    const ends = stem === "" || this.lexicon.words.has(stem);
    return logp.map((v, i) => ((this.wordChar[i] ? this.lexicon.prefixes.has(stem + this.vocab[i]) : ends) ? v : -Infinity));
  }

  // Beam search over characters until k words have ended better than any live beam (suggest.py _search).
  async search(root, prefix, k) {
    const width = this.beam, V = this.vocab.length;
    let beams = [root];
    const done = new Map();   // a word ended by different boundaries counts once
    for (let round = 0; round < this.maxChars; round++) {
      const cands = [];
      beams.forEach((beam, b) => {
        const logp = this.allowed(prefix + beam.chars, beam.logp);
        const top = Array.from(logp.keys()).sort((x, y) => logp[y] - logp[x]).slice(0, Math.min(width, V));
        for (const i of top) if (Number.isFinite(logp[i])) cands.push([beam.score + logp[i], b, i]);
      });
      cands.sort((x, y) => y[0] - x[0] || y[1] - x[1] || y[2] - x[2]);   // as Python sorts the tuples, reversed
      const grow = [];
      for (const [score, b, i] of cands) {
        if (grow.length === width) break;
        const parent = beams[b];
        if (this.wordChar[i]) grow.push([score, parent.chars + this.vocab[i], parent.stream.fork(), i]);
        else if (parent.chars || prefix) {
          const word = prefix + parent.chars, old = done.get(word);
          const best = old && old.score >= score ? old : { word, score, stream: parent.stream, boundary: i };
          done.set(word, { word, score: old ? logaddexp(old.score, score) : score, stream: best.stream, boundary: best.boundary });
        } else grow.push([score, "", parent.stream.fork(), i]);
      }
      beams = [];
      for (const [score, chars, stream, i] of grow) beams.push({ score, chars, stream, logp: logSoftmax(await stream.step(i)) });
      const ranked = [...done.values()].sort((x, y) => y.score - x.score);
      if (!beams.length || (ranked.length >= k && ranked[k - 1].score >= Math.max(...beams.map((x) => x.score)))) break;
    }
    return [...done.values()].sort((x, y) => y.score - x.score).slice(0, k);
  }
}
