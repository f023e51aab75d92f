/**
 * The small subset of msgpack the protocol needs, written out so that the bytes are canonical
 * (docs/protocol.md §3) and decoding is strict: a reader that keeps floats apart from integers,
 * takes only string map keys, refuses extension types and trailing bytes; a writer that sorts
 * map keys, picks the smallest integer format and writes every float as float64.
 */

import { ProtocolError } from "../errors";

/** A msgpack float (float32 or float64), kept apart from integers so `1.0` and `1` differ. */
export class MsgFloat {
  constructor(readonly value: number) {}
}

/** A bin value written from several parts, back to back (tensor after tensor, never copied twice). */
export class MsgBin {
  constructor(readonly parts: readonly Uint8Array[]) {}
}

/** A value read from msgpack: integers are numbers, floats `MsgFloat`, maps `Map`s. */
export type MsgValue = null | boolean | number | MsgFloat | string | Uint8Array | MsgValue[] | Map<string, MsgValue>;

/** A value the writer accepts: `undefined`/`null` map entries are left out. */
export type WireValue = number | MsgFloat | string | Uint8Array | MsgBin | readonly WireValue[] | WireMap;
/** A map for the writer; keys are written in ascending order of their UTF-8 bytes. */
export interface WireMap {
  readonly [key: string]: WireValue | undefined | null;
}

const MAX_DEPTH = 32;
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

class Bad extends Error {}

/** Read exactly one msgpack value filling `bytes`; throw `ProtocolError` saying what is wrong. */
export function readMsgpack(bytes: Uint8Array): MsgValue {
  const reader = new Reader(bytes);
  try {
    if (bytes.length === 0) throw new Bad("the frame is empty");
    const value = reader.value(0);
    if (reader.pos !== bytes.length) {
      throw new Bad(`${bytes.length - reader.pos} trailing bytes after the value`);
    }
    return value;
  } catch (exc) {
    if (exc instanceof Bad) throw new ProtocolError(`frame is not valid msgpack: ${exc.message}`);
    throw exc;
  }
}

class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(n: number): number {
    if (this.pos + n > this.bytes.length) {
      throw new Bad(`truncated: ${n} more bytes needed at offset ${this.pos}, ${this.bytes.length - this.pos} left`);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  private u8(): number {
    return this.view.getUint8(this.need(1));
  }
  private u16(): number {
    return this.view.getUint16(this.need(2));
  }
  private u32(): number {
    return this.view.getUint32(this.need(4));
  }

  private raw(n: number): Uint8Array {
    const at = this.need(n);
    return this.bytes.subarray(at, at + n);
  }

  private str(n: number): string {
    try {
      return utf8Decoder.decode(this.raw(n));
    } catch (exc) {
      if (exc instanceof Bad) throw exc;
      throw new Bad(`invalid UTF-8 in a string at offset ${this.pos - n}`);
    }
  }

  value(depth: number): MsgValue {
    if (depth > MAX_DEPTH) throw new Bad(`values nested deeper than ${MAX_DEPTH}`);
    const at = this.pos;
    const b = this.u8();
    if (b <= 0x7f) return b;
    if (b >= 0xe0) return b - 0x100;
    if (b <= 0x8f) return this.map(b & 0x0f, depth);
    if (b <= 0x9f) return this.array(b & 0x0f, depth);
    if (b <= 0xbf) return this.str(b & 0x1f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.raw(this.u8());
      case 0xc5: return this.raw(this.u16());
      case 0xc6: return this.raw(this.u32());
      case 0xca: return new MsgFloat(this.view.getFloat32(this.need(4)));
      case 0xcb: return new MsgFloat(this.view.getFloat64(this.need(8)));
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return Number(this.view.getBigUint64(this.need(8)));
      case 0xd0: return this.view.getInt8(this.need(1));
      case 0xd1: return this.view.getInt16(this.need(2));
      case 0xd2: return this.view.getInt32(this.need(4));
      case 0xd3: return Number(this.view.getBigInt64(this.need(8)));
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16(), depth);
      case 0xdd: return this.array(this.u32(), depth);
      case 0xde: return this.map(this.u16(), depth);
      case 0xdf: return this.map(this.u32(), depth);
    }
    if (b === 0xc1) throw new Bad(`byte 0xc1 (never used) at offset ${at}`);
    throw new Bad(`extension type 0x${b.toString(16)} at offset ${at} (not allowed)`);
  }

  private array(n: number, depth: number): MsgValue[] {
    if (n > this.bytes.length - this.pos) throw new Bad(`truncated: array of ${n} items at offset ${this.pos}`);
    const out: MsgValue[] = [];
    for (let i = 0; i < n; i++) out.push(this.value(depth + 1));
    return out;
  }

  private map(n: number, depth: number): Map<string, MsgValue> {
    if (2 * n > this.bytes.length - this.pos) throw new Bad(`truncated: map of ${n} entries at offset ${this.pos}`);
    const out = new Map<string, MsgValue>();
    for (let i = 0; i < n; i++) {
      const at = this.pos;
      const key = this.value(depth + 1);
      if (typeof key !== "string") throw new Bad(`map key at offset ${at} is not a string`);
      out.set(key, this.value(depth + 1));
    }
    return out;
  }
}

/** Encode `value` canonically: sorted map keys, smallest formats, floats as float64. */
export function writeMsgpack(value: WireValue): Uint8Array<ArrayBuffer> {
  const writer = new Writer();
  writer.value(value);
  return writer.finish();
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

class Writer {
  private readonly chunks: Uint8Array[] = [];
  private buf = new Uint8Array(1024);
  private view = new DataView(this.buf.buffer);
  private pos = 0;

  private room(n: number): number {
    if (this.pos + n > this.buf.length) {
      const bigger = new Uint8Array(Math.max(2 * this.buf.length, this.pos + n));
      bigger.set(this.buf.subarray(0, this.pos));
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** One byte (`x & 0xff`). Always reserve room before touching `buf`/`view`: `room` may replace them. */
  private byte(x: number): void {
    const at = this.room(1);
    this.view.setUint8(at, x & 0xff);
  }

  private head(n: number, fix: number, fixMax: number, c8: number | null, c16: number, c32: number): void {
    if (n <= fixMax) this.byte(fix | n);
    else if (c8 !== null && n <= 0xff) this.typed(c8, 1, (at) => this.view.setUint8(at, n));
    else if (n <= 0xffff) this.typed(c16, 2, (at) => this.view.setUint16(at, n));
    else if (n <= 0xffffffff) this.typed(c32, 4, (at) => this.view.setUint32(at, n));
    else throw new RangeError(`msgpack length ${n} too large`);
  }

  private bytes(data: Uint8Array): void {
    if (data.length <= 4096) {
      const at = this.room(data.length);
      this.buf.set(data, at);
      return;
    }
    this.chunks.push(this.buf.slice(0, this.pos), data);
    this.pos = 0;
  }

  private int(x: number): void {
    if (!Number.isSafeInteger(x)) throw new RangeError(`cannot write ${x} as a msgpack integer`);
    if (x >= 0) {
      if (x <= 0x7f) this.byte(x);
      else if (x <= 0xff) this.typed(0xcc, 1, (at) => this.view.setUint8(at, x));
      else if (x <= 0xffff) this.typed(0xcd, 2, (at) => this.view.setUint16(at, x));
      else if (x <= 0xffffffff) this.typed(0xce, 4, (at) => this.view.setUint32(at, x));
      else this.typed(0xcf, 8, (at) => this.view.setBigUint64(at, BigInt(x)));
    } else if (x >= -32) this.byte(x);
    else if (x >= -0x80) this.typed(0xd0, 1, (at) => this.view.setInt8(at, x));
    else if (x >= -0x8000) this.typed(0xd1, 2, (at) => this.view.setInt16(at, x));
    else if (x >= -0x80000000) this.typed(0xd2, 4, (at) => this.view.setInt32(at, x));
    else this.typed(0xd3, 8, (at) => this.view.setBigInt64(at, BigInt(x)));
  }

  private typed(code: number, n: number, set: (at: number) => void): void {
    const at = this.room(1 + n);
    this.view.setUint8(at, code);
    set(at + 1);
  }

  value(v: WireValue): void {
    if (typeof v === "number") this.int(v);
    else if (v instanceof MsgFloat) this.typed(0xcb, 8, (at) => this.view.setFloat64(at, v.value));
    else if (typeof v === "string") {
      const data = utf8Encoder.encode(v);
      this.head(data.length, 0xa0, 31, 0xd9, 0xda, 0xdb);
      this.bytes(data);
    } else if (v instanceof Uint8Array) {
      this.head(v.length, 0, -1, 0xc4, 0xc5, 0xc6);
      this.bytes(v);
    } else if (v instanceof MsgBin) {
      this.head(v.parts.reduce((a, p) => a + p.length, 0), 0, -1, 0xc4, 0xc5, 0xc6);
      v.parts.forEach((p) => this.bytes(p));
    } else if (Array.isArray(v)) {
      const items = v as readonly WireValue[];
      this.head(items.length, 0x90, 15, null, 0xdc, 0xdd);
      items.forEach((item) => this.value(item));
    } else {
      const map = v as WireMap;
      const entries = Object.keys(map)
        .filter((k) => map[k] !== undefined && map[k] !== null)
        .map((k) => [utf8Encoder.encode(k), map[k] as WireValue] as const)
        .sort((a, b) => compareBytes(a[0], b[0]));
      this.head(entries.length, 0x80, 15, null, 0xde, 0xdf);
      for (const [key, item] of entries) {
        this.head(key.length, 0xa0, 31, 0xd9, 0xda, 0xdb);
        this.bytes(key);
        this.value(item);
      }
    }
  }

  finish(): Uint8Array<ArrayBuffer> {
    if (this.chunks.length === 0) return this.buf.slice(0, this.pos);
    const parts = [...this.chunks, this.buf.subarray(0, this.pos)];
    const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}
