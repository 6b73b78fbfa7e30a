// Bytes on the wire for edgernn's browser engine: the typed errors, the stream spec read from a
// model's protobuf, and the snapshot bytes of runtime/snapshot.py (format 2). No dependencies.

export class EdgeError extends Error { constructor(msg) { super(msg); this.name = this.constructor.name; } }
export class SpecError extends EdgeError {}
export class InputError extends EdgeError {}
export class StreamError extends EdgeError {}
export class SnapshotError extends EdgeError {}
export class RunError extends EdgeError {}   // onnxruntime refused the call (the graph's own check)

export const ARRAYS = { float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
                        int8: Int8Array, uint8: Uint8Array, bool: Uint8Array };
const METADATA_KEY = "edgernn.stream_spec";
const MAGIC = new TextEncoder().encode("EDGERNN-SNAP");
export const CONTEXT = "__context__", PENDING = "__pending__", MEMORY = "__memory__:";

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
  throw new SpecError(`model: no '${METADATA_KEY}' in its metadata (export it with edgernn, embed a spec with ` +
                      "`edgernn spec --embed`, or pass {spec} / the site's model.json)");
}

// JSON with sorted keys and Python's separators (", " and ": "), as json.dumps(sort_keys=True) writes.
export function canonical(v) {
  if (Array.isArray(v)) return "[" + v.map(canonical).join(", ") + "]";
  if (v && typeof v === "object") return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ": " + canonical(v[k])).join(", ") + "}";
  return JSON.stringify(v).replace(/[\u0080-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));  // ensure_ascii
}

const bytesOf = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

// ---- snapshots: magic, u32 format, u32 header length, JSON header, little-endian payload (states,
// then the context window, then pending window items), sha256 of all before it. ``identity`` is
// {format, header}: the header fields a Python snapshot of this model carries (model.json). ----
export async function encodeSnapshot(identity, tensors) {
  if (!identity) throw new SnapshotError("snapshot: this engine has no snapshot identity (load the site's model.json)");
  const header = { ...identity.header, tensors: tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })) };
  const head = new TextEncoder().encode(canonical(header));
  const payload = tensors.map((t) => bytesOf(t.data));
  const n = MAGIC.length + 8 + head.length + payload.reduce((k, p) => k + p.length, 0);
  const blob = new Uint8Array(n + 32);
  blob.set(MAGIC, 0);
  const dv = new DataView(blob.buffer);
  dv.setUint32(MAGIC.length, identity.format, true);
  dv.setUint32(MAGIC.length + 4, head.length, true);
  let pos = MAGIC.length + 8;
  blob.set(head, pos); pos += head.length;
  for (const p of payload) { blob.set(p, pos); pos += p.length; }
  blob.set(new Uint8Array(await crypto.subtle.digest("SHA-256", blob.subarray(0, n))), n);
  return blob;
}

// ``want``: [{name, dtype, shape, free?, optional?}] this model's tensors in order. Returns
// {arrays, shapes} (typed arrays in ``want``'s dtypes, the shapes the snapshot gave) for the entries present.
export async function decodeSnapshot(identity, blob, want) {
  const data = blob instanceof Uint8Array ? blob : new Uint8Array(blob);
  const fixed = MAGIC.length + 8;
  if (data.length < fixed + 32 || !MAGIC.every((b, i) => data[i] === b)) throw new SnapshotError("not an edgernn snapshot (bad magic or too short)");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data.subarray(0, data.length - 32)));
  if (!digest.every((b, i) => b === data[data.length - 32 + i])) throw new SnapshotError("snapshot is corrupted or truncated (checksum mismatch)");
  const dv = new DataView(data.buffer, data.byteOffset);
  const fmt = dv.getUint32(MAGIC.length, true), len = dv.getUint32(MAGIC.length + 4, true);
  const formats = identity ? [identity.format, ...(identity.memoryFormat ? [identity.memoryFormat] : [])] : [];
  if (identity && !formats.includes(fmt)) throw new SnapshotError(`snapshot format ${fmt}, this page reads ${formats}`);
  if (fixed + len > data.length - 32) throw new SnapshotError(`snapshot header length ${len} is beyond the blob`);
  let header;
  try { header = JSON.parse(new TextDecoder().decode(data.subarray(fixed, fixed + len))); }
  catch { throw new SnapshotError("snapshot header is not valid JSON"); }
  if (!header || typeof header !== "object") throw new SnapshotError("snapshot header must be a JSON object");
  for (const [k, v] of Object.entries((identity && identity.header) || {}))
    if (JSON.stringify(header[k]) !== JSON.stringify(v))
      throw new SnapshotError(`snapshot ${k} ${JSON.stringify(header[k])} does not match this model's (${JSON.stringify(v)}): another model's snapshot`);
  const got = Array.isArray(header.tensors) ? header.tensors : [];
  const optional = want.filter((w) => w.optional).length;   // trailing entries a snapshot may lack (memory)
  if (optional && got.length === want.length - optional) want = want.slice(0, got.length);
  if (got.length !== want.length || got.some((t, i) => !t || t.name !== want[i].name))
    throw new SnapshotError(`snapshot tensors ${JSON.stringify(got.map((t) => t && t.name))} do not match this model's ${JSON.stringify(want.map((w) => w.name))}`);
  let pos = fixed + len;
  const end = data.length - 32;
  const out = want.map((w, i) => {
    const t = got[i];
    const shape = Array.isArray(t.shape) ? t.shape : null;
    // ``free``: [axis, min, max] of the one axis whose size may vary (pending items, a memory's length)
    const f = w.free;
    const okShape = shape && shape.length === w.shape.length && shape.every((d, k) => Number.isInteger(d) &&
      (f && k === f[0] ? d >= f[1] && d <= f[2] : d === w.shape[k]));
    if (!okShape) throw new SnapshotError(`snapshot tensor '${w.name}' has shape ${JSON.stringify(t.shape)}, this model's is ${JSON.stringify(w.shape)}${f ? ` (axis ${f[0]} in ${f[1]}..${f[2]})` : ""}`);
    const floats = (d) => d === "float32" || d === "float64";
    if (t.dtype !== w.dtype && !(floats(t.dtype) && floats(w.dtype)))
      throw new SnapshotError(`snapshot tensor '${w.name}' is ${t.dtype}, this model's is ${w.dtype}`);
    const Arr = ARRAYS[t.dtype], count = shape.reduce((a, b) => a * b, 1), nbytes = count * Arr.BYTES_PER_ELEMENT;
    if (pos + nbytes > end) throw new SnapshotError(`snapshot payload is shorter than its header says (tensor '${w.name}')`);
    let a = new Arr(data.slice(pos, pos + nbytes).buffer);
    pos += nbytes;
    if (t.dtype !== w.dtype) a = ARRAYS[w.dtype].from(a);   // float32 <-> float64, as Python casts
    return a;
  });
  if (pos !== end) throw new SnapshotError("snapshot payload length does not match its header");
  return { arrays: out, shapes: got.map((t) => t.shape) };
}
