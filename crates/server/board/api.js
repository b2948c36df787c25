// The board's client of the GridDispatch API: protobuf encoding and decoding driven by the
// layouts gridd publishes at schema.json (read from the descriptor set it was built with),
// and gRPC-Web calls over fetch, unary and server-streaming. No library, no build step.

const PKG = "griddispatch.v1.";
const TIMESTAMP = "google.protobuf.Timestamp";
// FieldDescriptorProto.Type
const DOUBLE = 1, FLOAT = 2, INT64 = 3, UINT64 = 4, INT32 = 5, FIXED64 = 6, FIXED32 = 7, BOOL = 8,
  STRING = 9, MESSAGE = 11, BYTES = 12, UINT32 = 13, ENUM = 14, SFIXED32 = 15, SFIXED64 = 16,
  SINT32 = 17, SINT64 = 18;

let schema = null;

export async function loadSchema() {
  const r = await fetch("schema.json");
  if (!r.ok) throw new Error(`schema.json: HTTP ${r.status}`);
  schema = await r.json();
}

/** The number of an enum value by its name, e.g. enumValue("CaseStatus", "CLOSED"). */
export function enumValue(type, name) {
  return schema.enums[PKG + type][name];
}

function fieldsOf(type) {
  const f = schema.messages[type];
  if (!f) throw new Error(`no message ${type} in the schema`);
  return f;
}

// ---- encoding ----

class Writer {
  constructor() { this.out = []; }
  varint(n) {
    let v = BigInt.asUintN(64, BigInt(n));
    while (v >= 0x80n) { this.out.push(Number(v & 0x7fn) | 0x80); v >>= 7n; }
    this.out.push(Number(v));
  }
  raw(bytes) { for (const b of bytes) this.out.push(b); }
  fixed(n, size, float) {
    const d = new DataView(new ArrayBuffer(size));
    if (float) size === 8 ? d.setFloat64(0, n, true) : d.setFloat32(0, n, true);
    else size === 8 ? d.setBigUint64(0, BigInt.asUintN(64, BigInt(n)), true) : d.setUint32(0, n >>> 0, true);
    this.raw(new Uint8Array(d.buffer));
  }
  tag(number, wire) { this.varint((number << 3) | wire); }
}

function encodeValue(w, number, type, typeName, v) {
  switch (type) {
    case DOUBLE: w.tag(number, 1); w.fixed(v, 8, true); break;
    case FLOAT: w.tag(number, 5); w.fixed(v, 4, true); break;
    case FIXED64: case SFIXED64: w.tag(number, 1); w.fixed(v, 8, false); break;
    case FIXED32: case SFIXED32: w.tag(number, 5); w.fixed(v, 4, false); break;
    case BOOL: w.tag(number, 0); w.varint(v ? 1 : 0); break;
    case SINT32: case SINT64: {
      const b = BigInt(v);
      w.tag(number, 0); w.varint(b >= 0n ? b << 1n : ((-b) << 1n) - 1n); break;
    }
    case STRING: case BYTES: {
      const bytes = type === STRING ? new TextEncoder().encode(v) : v;
      w.tag(number, 2); w.varint(bytes.length); w.raw(bytes); break;
    }
    case MESSAGE: {
      const bytes = encode(typeName, v);
      w.tag(number, 2); w.varint(bytes.length); w.raw(bytes); break;
    }
    default: w.tag(number, 0); w.varint(v); // int32/64, uint32/64, enums
  }
}

function isDefault(v) {
  return v === undefined || v === null || v === 0 || v === 0n || v === "" || v === false ||
    (Array.isArray(v) && v.length === 0);
}

/** Encodes `msg` (an object with the contract's snake_case field names) as `type`. */
export function encode(type, msg) {
  if (type === TIMESTAMP && msg instanceof Date) {
    const ms = msg.getTime();
    msg = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
  }
  const w = new Writer();
  for (const [name, number, ftype, repeated, typeName] of fieldsOf(type)) {
    const v = msg[name];
    if (isDefault(v)) continue;
    for (const one of repeated ? v : [v]) encodeValue(w, number, ftype, typeName, one);
  }
  return Uint8Array.from(w.out);
}

// ---- decoding ----

class Reader {
  constructor(bytes) { this.b = bytes; this.pos = 0; this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength); }
  done() { return this.pos >= this.b.length; }
  varint() {
    let v = 0n, shift = 0n;
    for (;;) {
      if (this.pos >= this.b.length) throw new Error("truncated varint");
      const byte = this.b[this.pos++];
      v |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return v;
      shift += 7n;
    }
  }
  bytes(n) {
    if (this.pos + n > this.b.length) throw new Error("truncated field");
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.bytes(8);
    else if (wire === 2) this.bytes(Number(this.varint()));
    else if (wire === 5) this.bytes(4);
    else throw new Error(`wire type ${wire} not supported`);
  }
}

function scalar(r, type, wire) {
  switch (type) {
    case DOUBLE: return r.view.getFloat64((r.bytes(8), r.pos - 8), true);
    case FLOAT: return r.view.getFloat32((r.bytes(4), r.pos - 4), true);
    case FIXED64: return Number(r.view.getBigUint64((r.bytes(8), r.pos - 8), true));
    case SFIXED64: return Number(r.view.getBigInt64((r.bytes(8), r.pos - 8), true));
    case FIXED32: return r.view.getUint32((r.bytes(4), r.pos - 4), true);
    case SFIXED32: return r.view.getInt32((r.bytes(4), r.pos - 4), true);
    case BOOL: return r.varint() !== 0n;
    case INT64: case INT32: case ENUM: return Number(BigInt.asIntN(64, r.varint()));
    case SINT32: case SINT64: { const v = r.varint(); return Number((v >> 1n) ^ -(v & 1n)); }
    default:
      if (wire !== 0) throw new Error(`unexpected wire type ${wire}`);
      return Number(r.varint()); // uint32, uint64
  }
}

function defaults(type) {
  const out = {};
  for (const [name, , ftype, repeated] of fieldsOf(type)) {
    out[name] = repeated ? [] : ftype === STRING ? "" : ftype === BOOL ? false :
      ftype === MESSAGE ? null : ftype === BYTES ? new Uint8Array() : 0;
  }
  return out;
}

/** Decodes `bytes` as `type`; timestamps become Dates, enums stay numbers. */
export function decode(type, bytes) {
  const fields = fieldsOf(type);
  const byNumber = new Map(fields.map((f) => [f[1], f]));
  const out = defaults(type);
  const r = new Reader(bytes);
  while (!r.done()) {
    const tag = Number(r.varint());
    const number = tag >>> 3, wire = tag & 7;
    const f = byNumber.get(number);
    if (!f) { r.skip(wire); continue; }
    const [name, , ftype, repeated, typeName] = f;
    let values;
    if (wire === 2 && ftype === STRING) values = [new TextDecoder().decode(r.bytes(Number(r.varint())))];
    else if (wire === 2 && ftype === BYTES) values = [r.bytes(Number(r.varint())).slice()];
    else if (wire === 2 && ftype === MESSAGE) values = [decode(typeName, r.bytes(Number(r.varint())))];
    else if (wire === 2) { // packed scalars
      const inner = new Reader(r.bytes(Number(r.varint())));
      values = [];
      while (!inner.done()) values.push(scalar(inner, ftype, ftype === DOUBLE || ftype === FIXED64 || ftype === SFIXED64 ? 1 : 0));
    } else values = [scalar(r, ftype, wire)];
    if (repeated) out[name].push(...values);
    else out[name] = values[values.length - 1];
  }
  if (type === TIMESTAMP) return new Date(out.seconds * 1000 + Math.floor(out.nanos / 1e6));
  return out;
}

// ---- gRPC-Web ----

export class CallError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
  "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

function statusError(code, message) {
  const name = CODES[code] ?? String(code);
  return new CallError(name, `${name}: ${message ? decodeURIComponent(message) : "(no message)"}`);
}

function frame(bytes) {
  const out = new Uint8Array(5 + bytes.length);
  new DataView(out.buffer).setUint32(1, bytes.length);
  out.set(bytes, 5);
  return out;
}

function trailers(bytes) {
  const map = {};
  for (const line of new TextDecoder().decode(bytes).split("\r\n")) {
    const i = line.indexOf(":");
    if (i > 0) map[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return map;
}

async function post(path, reqType, msg, token, signal) {
  const r = await fetch(`/${PKG}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/grpc-web+proto",
      "x-grpc-web": "1",
      authorization: `Bearer ${token}`,
    },
    body: frame(encode(PKG + reqType, msg)),
    signal,
    cache: "no-store",
  });
  const status = r.headers.get("grpc-status");
  if (status !== null && status !== "0") throw statusError(Number(status), r.headers.get("grpc-message"));
  if (!r.ok) throw new CallError("HTTP", `HTTP ${r.status}`);
  return r;
}

/**
 * Reads gRPC-Web frames from a response body: each message is handed to `onMessage`; the
 * trailers end the call (an error status throws).
 */
async function readFrames(r, respType, onMessage) {
  const reader = r.body.getReader();
  let buf = new Uint8Array(0);
  for (;;) {
    while (buf.length >= 5) {
      const len = new DataView(buf.buffer, buf.byteOffset).getUint32(1);
      if (buf.length < 5 + len) break;
      const flag = buf[0], payload = buf.subarray(5, 5 + len);
      buf = buf.slice(5 + len);
      if (flag & 0x80) {
        const t = trailers(payload);
        const code = Number(t["grpc-status"] ?? 0);
        if (code !== 0) throw statusError(code, t["grpc-message"]);
        return;
      }
      onMessage(decode(PKG + respType, payload));
    }
    const { value, done } = await reader.read();
    if (done) {
      if (r.headers.get("grpc-status") === "0") return;
      throw new CallError("UNAVAILABLE", "UNAVAILABLE: the stream ended without its status");
    }
    const next = new Uint8Array(buf.length + value.length);
    next.set(buf);
    next.set(value, buf.length);
    buf = next;
  }
}

/** One request, one response. */
export async function call(path, reqType, respType, msg, token) {
  const r = await post(path, reqType, msg, token);
  let out = null;
  await readFrames(r, respType, (m) => { out = m; });
  if (out === null) throw new CallError("INTERNAL", "INTERNAL: no message in the response");
  return out;
}

/**
 * A server stream: `onOpen` once the server has answered (its starting point is then fixed),
 * then `onMessage` for each message until the stream ends or `signal` aborts it.
 */
export async function stream(path, reqType, respType, msg, token, onOpen, onMessage, signal) {
  const r = await post(path, reqType, msg, token, signal);
  onOpen();
  await readFrames(r, respType, onMessage);
}

/** Every page of a listing, concatenated. */
export async function all(path, reqType, respType, msg, token, field) {
  const out = [];
  let page_token = "";
  do {
    const r = await call(path, reqType, respType, { ...msg, page_size: 500, page_token }, token);
    out.push(...r[field]);
    page_token = r.next_page_token;
  } while (page_token);
  return out;
}

/** A photo of a case, fetched with the token and shown from memory. */
export async function photoUrl(caseId, hash, token) {
  const r = await fetch(`/media/${encodeURIComponent(caseId)}/${encodeURIComponent(hash)}`, {
    headers: { authorization: `Bearer ${token}` },
    cache: "no-store",
  });
  if (!r.ok) throw new CallError("HTTP", `HTTP ${r.status}`);
  return URL.createObjectURL(await r.blob());
}
