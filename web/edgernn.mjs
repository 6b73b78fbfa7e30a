// edgernn's streaming engine for the browser: the same stream spec and snapshot bytes as the
// Python engine, on onnxruntime-web. Dependency-free apart from onnxruntime-web (passed in).
//
//   import * as ort from "./ort.wasm.bundle.min.mjs";
//   import { Engine } from "./edgernn.mjs";
//   const engine = await Engine.load("model.onnx", ort);      // the spec comes from the model bytes
//   const s = engine.stream();
//   const logits = await s.step(5);                           // one token (or a Float32Array frame)
//   const all = await s.push([5, 7, 9]);                      // a chunk: one output row per frame
//   const blob = await s.snapshot(); await engine.stream().restore(blob);   // Python-compatible bytes
//
// Errors are typed (InputError, StreamError, SnapshotError, SpecError) and a refused call leaves
// the stream's state as it was.

export class EdgeError extends Error { constructor(msg) { super(msg); this.name = this.constructor.name; } }
export class SpecError extends EdgeError {}
export class InputError extends EdgeError {}
export class StreamError extends EdgeError {}
export class SnapshotError extends EdgeError {}

const METADATA_KEY = "edgernn.stream_spec";
const MAGIC = new TextEncoder().encode("EDGERNN-SNAP");
const ARRAYS = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
                 int8: Int8Array, uint8: Uint8Array };

// ---- the spec from the model's bytes: ModelProto field 14 (metadata_props: key 1, value 2) ----
function varint(buf, pos) {
  let v = 0n, shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new SpecError("model: truncated protobuf varint");
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [v, pos];
    shift += 7n;
  }
}

function fields(buf, start, end) {
  const out = [];
  let pos = start;
  while (pos < end) {
    let key; [key, pos] = varint(buf, pos);
    const num = Number(key >> 3n), wire = Number(key & 7n);
    if (wire === 0) { [, pos] = varint(buf, pos); }
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let len; [len, pos] = varint(buf, pos);
      out.push([num, pos, pos + Number(len)]);
      pos += Number(len);
    } else throw new SpecError(`model: protobuf wire type ${wire} is not supported`);
  }
  if (pos !== end) throw new SpecError("model: protobuf field runs past its message");
  return out;
}

export function readSpec(bytes) {
  const buf = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const dec = new TextDecoder();
  for (const [num, a, b] of fields(buf, 0, buf.length)) {
    if (num !== 14) continue;
    let key = null, value = null;
    for (const [n, s, e] of fields(buf, a, b)) {
      if (n === 1) key = dec.decode(buf.subarray(s, e));
      if (n === 2) value = dec.decode(buf.subarray(s, e));
    }
    if (key === METADATA_KEY) return JSON.parse(value);
  }
  throw new SpecError(`model: no '${METADATA_KEY}' in its metadata (export it with edgernn, or write a spec)`);
}

// ---- shapes ----
function concrete(shape, batch, time) {
  return shape.map((d) => (d === "batch" ? batch : d === "time" ? time : d));
}
const size = (shape) => shape.reduce((a, b) => a * b, 1);

function filled(dtype, shape, value) {
  const Arr = ARRAYS[dtype];
  if (!Arr) throw new SpecError(`dtype ${dtype} is not supported in the browser engine`);
  const arr = new Arr(size(shape));
  arr.fill(dtype === "int64" ? BigInt(value) : value);
  return arr;
}

export class Engine {
  constructor(session, spec, ort, modelBytes) {
    this.session = session; this.spec = spec; this.ort = ort; this.bytes = modelBytes;
    if (spec.inputs.length !== 1) throw new SpecError("the browser engine streams one input tensor");
    this.input = spec.inputs[0];
    const rest = this.input.shape.filter((d) => d !== "batch" && d !== "time");
    this.frameShape = rest;                                   // per-frame shape (empty for tokens)
    this.tokens = this.input.dtype.startsWith("int");
    this.vocab = spec.model ? spec.model.input_size : null;
    this.context = spec.context || null;
  }

  static async load(url, ort, options = {}) {
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const spec = options.spec || readSpec(bytes);
    const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], ...options.session });
    return new Engine(session, spec, ort, bytes);
  }

  stream() { return new Stream(this); }

  // One frame or token → a typed array of the input's dtype; InputError names what is wrong.
  frame(x, where) {
    if (this.tokens) {
      const n = typeof x === "bigint" ? Number(x) : x;
      if (!Number.isInteger(n)) throw new InputError(`${where}: input '${this.input.name}' takes integer token ids, got ${x}`);
      if (this.vocab !== null && (n < 0 || n >= this.vocab))
        throw new InputError(`${where}: token ${n} is outside the vocabulary of input '${this.input.name}' (0..${this.vocab - 1})`);
      return [BigInt(n)];
    }
    const want = size(this.frameShape);
    if (!x || x.length !== want)
      throw new InputError(`${where}: input '${this.input.name}' takes frames of ${want} values (shape [${this.frameShape}]), got ${x && x.length}`);
    for (const v of x) if (!Number.isFinite(v)) throw new InputError(`${where}: input '${this.input.name}' holds ${v}`);
    return Array.from(x);
  }
}

export class Stream {
  constructor(engine) {
    this.engine = engine; this.closed = false; this.busy = false;
    this.reset();
  }

  reset() {
    this.check("reset");
    this.state = this.engine.spec.states.map((s) => filled(s.dtype, concrete(s.shape, 1, 1), s.init ?? 0));
  }

  check(where) {
    if (this.closed) throw new StreamError(`${where}: the stream is closed`);
    if (this.busy) throw new StreamError(`${where}: the stream is running another call`);
  }

  close() { this.closed = true; }

  async step(x) { return (await this.run([this.engine.frame(x, "step")], "step"))[0]; }

  async push(frames) {
    if (!frames || frames.length === 0) throw new InputError("push: no frames");
    const rows = Array.from(frames, (x, i) => this.engine.frame(x, `push frame ${i}`));
    return this.run(rows, "push");
  }

  async run(rows, where) {
    this.check(where);
    const e = this.engine, ort = e.ort, spec = e.spec, T = rows.length;
    const feeds = {};
    const shape = concrete(e.input.shape, 1, T);
    const Arr = ARRAYS[e.input.dtype];
    feeds[e.input.name] = new ort.Tensor(e.input.dtype, Arr.from(rows.flat()), shape);
    spec.states.forEach((s, i) => { feeds[s.input] = new ort.Tensor(s.dtype, this.state[i].slice(), concrete(s.shape, 1, 1)); });
    for (const c of spec.constants || []) feeds[c.name] = new ort.Tensor(c.dtype, filled(c.dtype, c.shape, c.value), c.shape);
    this.busy = true;
    let out;
    try { out = await e.session.run(feeds); }
    catch (err) { throw new EdgeError(`${where}: onnxruntime failed: ${err.message || err}`); }
    finally { this.busy = false; }
    this.state = spec.states.map((s) => out[s.output].data.slice());   // only after a whole run
    const y = out[spec.outputs[0].name], per = y.data.length / T;
    return Array.from({ length: T }, (_, t) => y.data.slice(t * per, (t + 1) * per));
  }

  fork() { this.check("fork"); const s = new Stream(this.engine); s.state = this.state.map((a) => a.slice()); return s; }

  // ---- snapshots: the Python engine's bytes (magic, u32 format, u32 header length, JSON header,
  // little-endian payload, sha256 of all before it). The identity fields of the header come from
  // the site's model.json (written by `edgernn web` from a Python snapshot of the same model). ----
  async snapshot(identity) {
    this.check("snapshot");
    const id = identity || this.engine.identity;
    if (!id) throw new SnapshotError("snapshot: this engine has no snapshot identity (load model.json from edgernn web)");
    const spec = this.engine.spec;
    const header = { ...id.header, tensors: spec.states.map((s) => ({ name: s.input, dtype: s.dtype, shape: concrete(s.shape, 1, 1) })) };
    const head = new TextEncoder().encode(canonical(header));
    const payload = this.state.map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    const n = MAGIC.length + 8 + head.length + payload.reduce((k, p) => k + p.length, 0);
    const blob = new Uint8Array(n + 32);
    blob.set(MAGIC, 0);
    const dv = new DataView(blob.buffer);
    dv.setUint32(MAGIC.length, id.format, true); dv.setUint32(MAGIC.length + 4, head.length, true);
    let pos = MAGIC.length + 8; blob.set(head, pos); pos += head.length;
    for (const p of payload) { blob.set(p, pos); pos += p.length; }
    blob.set(new Uint8Array(await crypto.subtle.digest("SHA-256", blob.subarray(0, n))), n);
    return blob;
  }

  async restore(blob, identity) {
    this.check("restore");
    const id = identity || this.engine.identity;
    const data = blob instanceof Uint8Array ? blob : new Uint8Array(blob);
    const fixed = MAGIC.length + 8;
    if (data.length < fixed + 32 || !MAGIC.every((b, i) => data[i] === b)) throw new SnapshotError("not an edgernn snapshot (bad magic or too short)");
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data.subarray(0, data.length - 32)));
    if (!digest.every((b, i) => b === data[data.length - 32 + i])) throw new SnapshotError("snapshot is corrupted or truncated (checksum mismatch)");
    const dv = new DataView(data.buffer, data.byteOffset);
    const fmt = dv.getUint32(MAGIC.length, true), len = dv.getUint32(MAGIC.length + 4, true);
    if (id && fmt !== id.format) throw new SnapshotError(`snapshot format ${fmt}, this page reads ${id.format}`);
    let header;
    try { header = JSON.parse(new TextDecoder().decode(data.subarray(fixed, fixed + len))); }
    catch { throw new SnapshotError("snapshot header is not valid JSON"); }
    for (const [k, v] of Object.entries((id && id.header) || {}))
      if (JSON.stringify(header[k]) !== JSON.stringify(v)) throw new SnapshotError(`snapshot ${k} ${JSON.stringify(header[k])} does not match this model's`);
    const spec = this.engine.spec;
    const tensors = header.tensors || [];
    let pos = fixed + len;
    const state = spec.states.map((s, i) => {
      const t = tensors[i], shape = concrete(s.shape, 1, 1);
      if (!t || t.name !== s.input || t.dtype !== s.dtype || JSON.stringify(t.shape) !== JSON.stringify(shape))
        throw new SnapshotError(`snapshot tensor ${i} is ${JSON.stringify(t)}, this model's state '${s.input}' is ${s.dtype} [${shape}]`);
      const Arr = ARRAYS[s.dtype], bytes = size(shape) * Arr.BYTES_PER_ELEMENT;
      const a = new Arr(data.slice(pos, pos + bytes).buffer); pos += bytes;
      return a;
    });
    if (pos !== data.length - 32) throw new SnapshotError("snapshot payload does not match its header");
    this.state = state;
  }
}

// JSON with sorted keys and Python's separators (", " and ": "), as json.dumps(sort_keys=True) writes.
export function canonical(v) {
  if (Array.isArray(v)) return "[" + v.map(canonical).join(", ") + "]";
  if (v && typeof v === "object") return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ": " + canonical(v[k])).join(", ") + "}";
  return JSON.stringify(v);
}
