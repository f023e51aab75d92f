// safetensors files for model download and the in-browser library, matching Python
// `Weights.to_safetensors`: u64 LE header length, JSON header (F32 tensors with shape and
// data_offsets, __metadata__ {"disco.order": JSON list of names}), then the raw LE float32 data.

import { Weights, float32FromLE, float32LEBytes } from "../../core/weights";

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** The tensors as safetensors bytes, their order kept in the `disco.order` metadata. */
export function toSafetensors(w: Weights): Uint8Array {
  const header: Record<string, HeaderEntry | Record<string, string>> = {
    __metadata__: { "disco.order": JSON.stringify(w.names) },
  };
  let offset = 0;
  w.names.forEach((name, i) => {
    const size = (w.values[i]?.length ?? 0) * 4;
    header[name] = { dtype: "F32", shape: [...(w.shapes[i] ?? [])], data_offsets: [offset, offset + size] };
    offset += size;
  });
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8; // spaces keep the data 8-byte aligned
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const v of w.values) {
    out.set(float32LEBytes(v), at);
    at += v.length * 4;
  }
  return out;
}

/** Tensors from safetensors bytes (F32 only), in `disco.order` when present. */
export function fromSafetensors(bytes: Uint8Array): Weights {
  if (bytes.length < 8) throw new Error("not a safetensors file: too short");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  if (headerLen <= 0 || 8 + headerLen > bytes.length) {
    throw new Error("not a safetensors file: bad header length");
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen))) as Record<
      string,
      unknown
    >;
  } catch {
    throw new Error("not a safetensors file: its header is not JSON");
  }
  const meta = (header.__metadata__ ?? {}) as Record<string, string>;
  let names = Object.keys(header).filter((k) => k !== "__metadata__");
  const order = parseOrder(meta["disco.order"]);
  if (order && order.length === names.length && order.every((n) => names.includes(n))) {
    names = order;
  }
  const dataStart = 8 + headerLen;
  const shapes: number[][] = [];
  const values: Float32Array[] = [];
  for (const name of names) {
    const e = header[name] as HeaderEntry;
    if (e.dtype !== "F32") throw new Error(`tensor ${name} is ${e.dtype}, expected F32`);
    const [b, end] = e.data_offsets;
    shapes.push([...e.shape]);
    values.push(float32FromLE(bytes.subarray(dataStart + b, dataStart + end)));
  }
  return new Weights(names, shapes, values);
}

function parseOrder(raw: string | undefined): string[] | null {
  if (!raw) return null;
  try {
    const v: unknown = JSON.parse(raw);
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  } catch {
    return raw.split(","); // the comma-separated form of docs/protocol.md §14
  }
  return null;
}

/** Offer bytes to the user as a file download. */
export function downloadBytes(bytes: Uint8Array | string, filename: string, type: string): void {
  const blob = new Blob([bytes as BlobPart], { type });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
