// edgernn's streaming engine for the browser: the same stream spec, call semantics and snapshot bytes
// as the Python engine (runtime/stream.py, general.py, snapshot.py), on onnxruntime-web (passed in).
//
//   import * as ort from "./ort.wasm.bundle.min.mjs";
//   import { Engine } from "./edgernn.mjs";
//   const site = await (await fetch("model.json")).json();      // written by `edgernn web`
//   const engine = await Engine.load("model.onnx", ort, { site });  // or no site: the spec from the bytes
//   const s = engine.stream();
//   const y = await s.step(5);              // one token, a Float32Array frame, or {name: frame, ...}
//   const rows = await s.push([5, 7, 9]);   // any number of frames: one output row per frame (per call
//                                           // for an output without a time axis); window models buffer
//   const last = await s.flush();           // window models: the pending items, zero-padded
//   const blob = await s.snapshot(); await engine.stream().restore(blob);   // Python's bytes
//
// Any spec the Python engine takes: token or frame inputs, several streamed inputs, several states,
// constants, a context window (frames of the previous call prepended), a window (items per call,
// the remainder buffered), batch and time axes anywhere. One stream per call (batch 1).
// Errors are typed (InputError, StreamError, SnapshotError, SpecError) and a refused call leaves the
// stream as it was; calls on one stream run one at a time, in order.

import { ARRAYS, CONTEXT, EdgeError, InputError, MEMORY, PENDING, RunError, SnapshotError, SpecError, StreamError,
         canonical, decodeSnapshot, encodeSnapshot, readSpec } from "./wire.mjs";

export { EdgeError, InputError, RunError, SnapshotError, SpecError, StreamError, canonical, readSpec };

const size = (shape) => shape.reduce((a, b) => a * b, 1);
const concrete = (shape, time) => shape.map((d) => (d === "batch" ? 1 : d === "time" ? time : d));

function filled(dtype, n, value) {
  const Arr = ARRAYS[dtype];
  if (!Arr) throw new SpecError(`dtype ${dtype} is not supported in the browser engine`);
  const arr = new Arr(n);
  if (Array.isArray(value)) { const flat = value.flat(Infinity); arr.set(dtype === "int64" ? flat.map(BigInt) : flat); }
  else arr.fill(dtype === "int64" ? BigInt(value) : Number(value));
  return arr;
}

// (a, T, b) <-> (T, a, b) for a row-major block: the time axis moved between front and position.
function moveTime(src, A, T, B, toFront) {
  if (A === 1 || T === 1) return src;
  const out = new src.constructor(src.length);
  for (let a = 0; a < A; a++)
    for (let t = 0; t < T; t++) {
      const g = (a * T + t) * B, s = (t * A + a) * B;
      if (toFront) out.set(src.subarray(g, g + B), s); else out.set(src.subarray(s, s + B), g);
    }
  return out;
}

// A streamed input or an output: where its batch and time axes are, its frame shape.
function layout(t, what) {
  const b = t.shape.indexOf("batch"), tx = t.shape.indexOf("time");
  const rest = t.shape.filter((d) => d !== "batch" && d !== "time");
  const timePos = tx < 0 ? -1 : t.shape.slice(0, tx).filter((d) => d !== "batch").length;
  if (what === "input" && !rest.every((d) => Number.isInteger(d)))
    throw new SpecError(`input '${t.name}': frame axes must be sizes, got [${t.shape}]`);
  return { name: t.name, dtype: t.dtype, shape: t.shape, batchAxis: b, timeAxis: tx, timePos, frame: rest,
           frameSize: size(rest.map((d) => (Number.isInteger(d) ? d : 1))), Arr: ARRAYS[t.dtype] };
}

export class Engine {
  constructor(session, spec, ort, options = {}) {
    this.session = session; this.spec = spec; this.ort = ort; this.identity = options.identity || null;
    for (const t of [...spec.inputs, ...spec.states, ...spec.outputs, ...(spec.constants || []), ...(spec.memory || [])])
      if (!ARRAYS[t.dtype]) throw new SpecError(`tensor '${t.name || t.input}': dtype ${t.dtype} is not supported in the browser engine`);
    this.inputs = spec.inputs.map((t) => layout(t, "input"));
    this.outputs = spec.outputs.map((t) => layout(t, "output"));
    this.input = this.inputs[0];
    this.multi = this.inputs.length > 1;
    this.tokens = this.input.frame.length === 0 && !this.input.dtype.startsWith("float");
    const model = spec.model;
    this.vocab = model && model.input_kind === "tokens" ? model.input_size : null;
    this.context = spec.context || null;
    this.contextInput = this.context ? this.inputs.find((t) => t.name === this.context.input) : null;
    if (this.context && !this.contextInput) throw new SpecError(`context input '${this.context.input}' is not a streamed input`);
    // items per call: the spec's window, else a time axis the graph fixes above 1 (as the Python engine)
    const meta = Object.fromEntries((session.inputMetadata || []).map((m) => [m.name, m.shape || []]));
    const fixed = this.inputs.map((t) => (t.timeAxis >= 0 ? meta[t.name] && meta[t.name][t.timeAxis] : undefined))
      .find((d) => Number.isInteger(d));
    this.window = options.window ?? spec.window ?? (fixed > 1 ? fixed : null);
    if (this.window && this.multi) throw new SpecError("window streaming takes one streamed input");
    this.maxChunk = this.window ?? (fixed === 1 || this.inputs.some((t) => t.timeAxis < 0) ? 1 : Infinity);
    this.constants = Object.fromEntries((spec.constants || []).map((c) =>
      [c.name, new ort.Tensor(c.dtype, filled(c.dtype, size(c.shape), c.value), c.shape)]));
    this.stateShapes = spec.states.map((s) => concrete(s.shape, 1));
    // per-stream memory (spec version 3): fed on every call, set once per stream; a mask of ones
    this.memory = (spec.memory || []).map((m) => {
      const b = m.shape.indexOf("batch"), L = m.shape.findIndex((d, i) => i !== b && typeof d === "string");
      return { name: m.name, dtype: m.dtype, shape: m.shape, batchAxis: b, lengthAxis: L, mask: m.mask || null,
               fixed: size(m.shape.filter((_, i) => i !== b && i !== L)), maxLength: m.max_length ?? 2 ** 31, Arr: ARRAYS[m.dtype] };
    });
  }

  // ``options``: {site} (model.json from `edgernn web`: spec, snapshot identity, window), or {spec};
  // {session}: onnxruntime-web session options. Without either, the spec is read from the bytes.
  static async load(url, ort, options = {}) {
    const res = await fetch(url);
    if (!res.ok) throw new EdgeError(`${url}: HTTP ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const site = options.site || {};
    const spec = options.spec || site.spec || readSpec(bytes);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], ...options.session });
    return new Engine(session, spec, ort, { identity: site.snapshot, window: (site.engine || {}).window });
  }

  stream(memory) { return new Stream(this, memory ? this.checkMemory(memory, "stream(memory)") : null); }

  // {name: array (the spec's shape less the batch axis, flat or nested)} → held memory; InputError if wrong.
  checkMemory(given, where) {
    const names = this.memory.map((m) => m.name);
    if (!names.length) throw new InputError(`${where}: this model's spec declares no memory; nothing to set`);
    if (!given || typeof given !== "object" || Array.isArray(given) || ArrayBuffer.isView(given))
      throw new InputError(`${where}: expected {name: array} with every memory tensor [${names}]`);
    if (JSON.stringify(Object.keys(given).sort()) !== JSON.stringify([...names].sort()))
      throw new InputError(`${where}: memory tensors are [${names}], got [${Object.keys(given)}]`);
    return Object.fromEntries(this.memory.map((m) => {
      const v = given[m.name], flat = ArrayBuffer.isView(v) ? v : Array.isArray(v) ? v.flat(Infinity) : null;
      if (!flat) throw new InputError(`${where}: memory '${m.name}' must be an array, got ${typeof v}`);
      const L = m.lengthAxis >= 0 ? flat.length / m.fixed : 1;
      if (m.lengthAxis < 0 ? flat.length !== m.fixed : !Number.isInteger(L) || L < 1)
        throw new InputError(`${where}: memory '${m.name}' has ${flat.length} values, expected ${m.lengthAxis < 0 ? m.fixed : `a whole number >= 1 of rows of ${m.fixed}`}`);
      if (L > m.maxLength) throw new InputError(`${where}: memory '${m.name}' has length ${L}, beyond max_length ${m.maxLength}`);
      const data = new m.Arr(flat.length);
      for (let i = 0; i < flat.length; i++) {
        const x = Number(flat[i]);
        if (!Number.isFinite(x)) throw new InputError(`${where}: memory '${m.name}' holds ${flat[i]} (NaN, Inf or not a number)`);
        data[i] = m.dtype === "int64" ? BigInt(Math.trunc(x)) : x;
      }
      return [m.name, { data, length: L, shape: m.shape.map((d, i) => (i === m.batchAxis ? 1 : i === m.lengthAxis ? L : d)) }];
    }));
  }

  // Frames of one streamed input → {data: typed array (n * frame size), n}; InputError names what is wrong.
  frames(t, xs, where, first) {
    const F = t.frameSize, tokens = !t.dtype.startsWith("float");
    let flat;
    if (ArrayBuffer.isView(xs)) flat = xs;
    else if (Array.isArray(xs)) flat = F === 1 && xs.every((v) => typeof v === "number" || typeof v === "bigint") ? xs
      : xs.flatMap((f, i) => {
        const v = ArrayBuffer.isView(f) ? Array.from(f) : Array.isArray(f) ? f.flat(Infinity) : [f];
        if (v.length !== F) throw new InputError(`${where}: input '${t.name}' frame ${i} has ${v.length} values, expected ${F} (frame shape [${t.frame}])`);
        return v;
      });
    else throw new InputError(`${where}: input '${t.name}' takes an array of frames, got ${typeof xs}`);
    if (flat.length % F) throw new InputError(`${where}: input '${t.name}' got ${flat.length} values, not a whole number of frames of ${F}`);
    const out = new t.Arr(flat.length);
    const vocab = first && this.vocab !== null ? this.vocab : null;
    for (let i = 0; i < flat.length; i++) {
      const v = flat[i];
      if (tokens) {
        const n = typeof v === "bigint" ? v : Number.isSafeInteger(v) ? BigInt(v) : null;
        if (n === null) throw new InputError(`${where}: input '${t.name}' takes integer token ids, got ${v}`);
        if (vocab !== null && (n < 0n || n >= BigInt(vocab)))
          throw new InputError(`${where}: token ${n} is outside the vocabulary of input '${t.name}' (0..${vocab - 1})`);
        out[i] = t.dtype === "int64" ? n : Number(n);
      } else {
        const x = Number(v);
        if (!Number.isFinite(x)) throw new InputError(`${where}: input '${t.name}' holds ${v} (NaN, Inf or not a number)`);
        out[i] = x;
      }
    }
    return { data: out, n: flat.length / F };
  }

  // Frames of every streamed input (a dict for several), the same count each.
  many(xs, where) {
    if (!this.multi) return { [this.input.name]: this.frames(this.input, xs, where, true) };
    if (!xs || typeof xs !== "object" || ArrayBuffer.isView(xs) || Array.isArray(xs))
      throw new InputError(`${where}: this model has several streamed inputs [${this.inputs.map((t) => t.name)}]: feed {name: frames}`);
    const names = Object.keys(xs).sort(), want = this.inputs.map((t) => t.name).sort();
    if (JSON.stringify(names) !== JSON.stringify(want)) throw new InputError(`${where}: streamed inputs are [${want}], got [${names}]`);
    const out = Object.fromEntries(this.inputs.map((t, i) => [t.name, this.frames(t, xs[t.name], where, i === 0)]));
    const counts = new Set(Object.values(out).map((v) => v.n));
    if (counts.size > 1) throw new InputError(`${where}: streamed inputs must have the same number of frames, got ${JSON.stringify(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.n])))}`);
    return out;
  }

  one(x, where) {
    if (!this.multi) return this.many([x], where);
    if (!x || typeof x !== "object") throw new InputError(`${where}: this model has several streamed inputs: feed {name: frame}`);
    return this.many(Object.fromEntries(Object.entries(x).map(([k, v]) => [k, [v]])), where);
  }

  // One session.run (pure): frames in stream layout → first-output rows, every output, new states and context.
  async call(states, ctx, xs, t0, n, where, mem) {
    const ort = this.ort, feeds = { ...this.constants };
    for (const m of this.memory) {
      const held = mem[m.name];
      feeds[m.name] = new ort.Tensor(m.dtype, held.data, held.shape);
      if (m.mask) feeds[m.mask] = new ort.Tensor("float32", new Float32Array(held.length).fill(1), [1, held.length]);
    }
    let newCtx = ctx;
    for (const t of this.inputs) {
      let data = xs[t.name].data.subarray(t0 * t.frameSize, (t0 + n) * t.frameSize), T = n;
      if (t === this.contextInput) {
        const K = this.context.frames, joined = new t.Arr(ctx.length + data.length);
        joined.set(ctx); joined.set(data, ctx.length);
        data = joined; T = K + n;
        newCtx = joined.slice(joined.length - K * t.frameSize);
      }
      if (t.timeAxis < 0 && T !== 1) throw new InputError(`${where}: input '${t.name}' has no time axis: one frame per call`);
      const A = size(t.frame.slice(0, Math.max(t.timePos, 0)));
      feeds[t.name] = new ort.Tensor(t.dtype, moveTime(data, A, T, t.frameSize / A, false), concrete(t.shape, T));
    }
    this.spec.states.forEach((s, i) => { feeds[s.input] = new ort.Tensor(s.dtype, states[i], this.stateShapes[i]); });
    let out;
    try { out = await this.session.run(feeds); }
    catch (err) { throw new RunError(`${where}: onnxruntime failed: ${err.message || err}`); }
    const newStates = this.spec.states.map((s, i) => {
      const y = out[s.output];
      if (!y || y.data.length !== states[i].length) throw new SpecError(`state '${s.output}': the graph returned [${y && y.dims}], the spec says [${this.stateShapes[i]}]`);
      return y.data;
    });
    const outs = this.outputs.map((o) => this.rows(o, out[o.name]));
    return { outs, states: newStates, ctx: newCtx };
  }

  // An output in graph layout (batch 1) → rows along its time axis, or one row without one.
  rows(o, y) {
    const dims = Array.from(y.dims);
    if (o.batchAxis >= 0 && dims[o.batchAxis] !== 1) throw new SpecError(`output '${o.name}': batch axis ${o.batchAxis} has size ${dims[o.batchAxis]}, expected 1`);
    if (o.timeAxis < 0) return [y.data];
    const rest = dims.filter((_, i) => i !== o.batchAxis), T = dims[o.timeAxis];
    const A = size(rest.slice(0, o.timePos)), B = size(rest.slice(o.timePos + 1));
    const front = moveTime(y.data, A, T, B, true);
    return Array.from({ length: T }, (_, t) => front.subarray(t * A * B, (t + 1) * A * B));
  }
}

export class Stream {
  constructor(engine, memory = null) {
    this.engine = engine; this.closed = false; this.running = 0; this.tail = Promise.resolve();
    this.held = memory;   // per-stream memory (read-only, shared by forks), or null
    this.lastOutputs = {};
    this.init();
  }

  init() {
    const e = this.engine, spec = e.spec;
    this.state = spec.states.map((s, i) => filled(s.dtype, size(e.stateShapes[i]), s.init ?? 0));
    this.ctx = e.context ? new e.contextInput.Arr(e.context.frames * e.contextInput.frameSize) : null;
    this.pendingData = e.window ? new e.input.Arr(0) : null;
  }

  get pending() { return this.pendingData ? this.pendingData.length / this.engine.input.frameSize : 0; }

  check(where) { if (this.closed) throw new StreamError(`${where}: the stream is closed; create a new one with engine.stream()`); }

  // Calls on one stream run one at a time, in the order made (as the Python stream's lock).
  serial(where, fn) {
    this.check(where);
    this.running++;
    const p = this.tail.then(() => { this.check(where); return fn(); });
    this.tail = p.then(() => { this.running--; }, () => { this.running--; });
    return p;
  }

  idle(where) {
    this.check(where);
    if (this.running) throw new StreamError(`${where}: the stream has calls in flight; await them first`);
  }

  // Back to the initial state; the memory is kept, or replaced by ``memory`` (checked first).
  reset(memory) {
    this.idle("reset");
    const held = memory ? this.engine.checkMemory(memory, "reset(memory)") : this.held;
    this.init(); this.lastOutputs = {}; this.held = held;
  }

  setMemory(memory) { this.idle("setMemory"); this.held = this.engine.checkMemory(memory, "setMemory"); }

  get memory() { return this.held ? Object.fromEntries(Object.entries(this.held).map(([k, v]) => [k, v.data])) : {}; }

  close() { this.closed = true; }

  fork() {
    this.idle("fork");
    const s = new Stream(this.engine, this.held);
    s.state = this.state.map((a) => a.slice());
    s.ctx = this.ctx && this.ctx.slice();
    s.pendingData = this.pendingData && this.pendingData.slice();
    return s;
  }

  // One frame (a window model: one whole window of items, nothing pending) → its first output.
  step(x) {
    const e = this.engine;
    if (e.window) {
      return this.serial("step", async () => {
        const xs = e.many(x, "step");
        if (xs[e.input.name].n !== e.window)
          throw new InputError(`step: input '${e.input.name}' takes one window of ${e.window} items, got ${xs[e.input.name].n}; push(items) takes any number`);
        if (this.pending) throw new InputError(`step: ${this.pending} items are pending from push(); keep feeding with push() or flush() first`);
        return (await this.advance(xs, e.window, e.window, "step"))[0];
      });
    }
    return this.serial("step", async () => (await this.advance(e.one(x, "step"), 1, 1, "step"))[0]);
  }

  // Any number of frames in calls of at most ``chunk`` (a window model: whole windows, the rest waits).
  push(frames, chunk = 64) {
    const e = this.engine;
    if (!Number.isInteger(chunk) || chunk < 1) throw new InputError(`push: chunk must be an integer >= 1, got ${chunk}`);
    return this.serial("push", async () => {
      const xs = e.many(frames, "push");
      const n = xs[e.input.name].n;
      if (!e.window) return n ? this.advance(xs, n, Math.min(chunk, e.maxChunk), "push") : [];
      const F = e.input.frameSize, have = this.pending + n, whole = have - (have % e.window);
      const joined = new e.input.Arr(have * F);
      joined.set(this.pendingData); joined.set(xs[e.input.name].data, this.pendingData.length);
      const out = whole ? await this.advance({ [e.input.name]: { data: joined, n: whole } }, whole, e.window, "push") : [];
      this.pendingData = joined.slice(whole * F);   // only after the calls ran
      return out;
    });
  }

  // Window models: the pending items as one last window, zero-padded; nothing pending → [].
  flush() {
    const e = this.engine;
    return this.serial("flush", async () => {
      if (!e.window || !this.pending) return [];
      const padded = new e.input.Arr(e.window * e.input.frameSize);
      padded.set(this.pendingData);
      const out = await this.advance({ [e.input.name]: { data: padded, n: e.window } }, e.window, e.window, "flush");
      this.pendingData = new e.input.Arr(0);
      return out;
    });
  }

  // ``n`` frames through calls of ``chunk``; the state, context and outputs change only when all ran.
  async advance(xs, n, chunk, where) {
    const e = this.engine;
    if (e.memory.length && !this.held)
      throw new StreamError(`${where}: this model reads per-stream memory [${e.memory.map((m) => m.name)}] and this stream holds none: call setMemory({...}) or create it with engine.stream({...})`);
    let states = this.state, ctx = this.ctx, last = null;
    const rows = [];
    for (let t0 = 0; t0 < n; t0 += chunk) {
      const k = Math.min(chunk, n - t0);
      const r = await e.call(states, ctx, xs, t0, k, where, this.held);
      states = r.states; ctx = r.ctx; last = r.outs;
      rows.push(...r.outs[0]);
    }
    this.state = states; this.ctx = ctx;
    this.lastOutputs = Object.fromEntries(e.outputs.map((o, i) => [o.name, last[i][last[i].length - 1]]));
    return rows;
  }

  tensors() {
    const e = this.engine, out = e.spec.states.map((s, i) => ({ name: s.input, dtype: s.dtype, shape: e.stateShapes[i], data: this.state[i] }));
    if (e.context) out.push({ name: CONTEXT, dtype: e.contextInput.dtype, shape: [1, e.context.frames, ...e.contextInput.frame], data: this.ctx });
    if (e.window) out.push({ name: PENDING, dtype: e.input.dtype, shape: [this.pending, ...e.input.frame], data: this.pendingData, free: [0, 0, e.window - 1] });
    for (const m of e.memory) {   // last, and only when held (a snapshot of a stream without memory has none)
      const h = this.held && this.held[m.name];
      out.push({ name: MEMORY + m.name, dtype: m.dtype, data: h && h.data, optional: true,
                 shape: h ? h.shape : m.shape.map((d, i) => (i === m.batchAxis ? 1 : i === m.lengthAxis ? 0 : d)),
                 free: m.lengthAxis >= 0 ? [m.lengthAxis, 1, m.maxLength] : null });
    }
    return out;
  }

  // The state, context window and pending items as the Python engine's snapshot bytes (format 2).
  snapshot() {
    return this.serial("snapshot", () => {
      const id = this.engine.identity, tensors = this.tensors().filter((t) => !t.optional || t.data);
      return encodeSnapshot(id && this.held ? { ...id, format: id.memoryFormat } : id, tensors);
    });
  }

  restore(blob) {
    return this.serial("restore", async () => {
      const e = this.engine;
      if (!e.identity) throw new SnapshotError("restore: this engine has no snapshot identity (load the site's model.json)");
      const { arrays, shapes } = await decodeSnapshot(e.identity, blob, this.tensors());
      let k = e.spec.states.length;
      const held = arrays.length > k + (e.context ? 1 : 0) + (e.window ? 1 : 0) ? {} : null;
      if (held) e.memory.forEach((m, i) => {
        const at = arrays.length - e.memory.length + i, shape = shapes[at];
        held[m.name] = { data: arrays[at], shape, length: m.lengthAxis >= 0 ? shape[m.lengthAxis] : 1 };
      });
      this.state = arrays.slice(0, k);
      if (e.context) this.ctx = arrays[k++];
      if (e.window) this.pendingData = arrays[k++];
      this.held = held;   // the snapshot's memory, or its lack of one, as in Python
      this.lastOutputs = {};
    });
  }
}
