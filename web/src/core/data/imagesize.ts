/**
 * Picture dimensions read from the first bytes of a file (PNG, GIF, BMP, WebP, JPEG), without
 * decoding it: a 20000×20000 picture is refused before it takes gigabytes of memory to decode.
 * Returns null when the header is not recognised or not within the bytes given; the caller then
 * decodes and checks the size afterwards.
 */

export interface ImageSize {
  width: number;
  height: number;
}

/** How many leading bytes `headerSize` wants (JPEG frames may follow a large EXIF block). */
export const HEADER_BYTES = 256 * 1024;

export function headerSize(bytes: Uint8Array): ImageSize | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ascii = (at: number, n: number): string =>
    at + n <= bytes.length ? String.fromCharCode(...bytes.subarray(at, at + n)) : "";
  // PNG: signature, then the IHDR chunk with big-endian width and height
  if (ascii(1, 3) === "PNG" && ascii(12, 4) === "IHDR" && bytes.length >= 24) {
    return { width: view.getUint32(16), height: view.getUint32(20) };
  }
  // GIF: logical screen size, little-endian
  if ((ascii(0, 6) === "GIF87a" || ascii(0, 6) === "GIF89a") && bytes.length >= 10) {
    return { width: view.getUint16(6, true), height: view.getUint16(8, true) };
  }
  // BMP: BITMAPINFOHEADER (or later) width and height, little-endian; height < 0 = top-down
  if (ascii(0, 2) === "BM" && bytes.length >= 26 && view.getUint32(14, true) >= 40) {
    return { width: Math.abs(view.getInt32(18, true)), height: Math.abs(view.getInt32(22, true)) };
  }
  if (ascii(0, 4) === "RIFF" && ascii(8, 4) === "WEBP") return webpSize(bytes, view, ascii);
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return jpegSize(bytes, view);
  return null;
}

function webpSize(bytes: Uint8Array, view: DataView, ascii: (at: number, n: number) => string): ImageSize | null {
  const chunk = ascii(12, 4);
  if (chunk === "VP8X" && bytes.length >= 30) {
    const u24 = (at: number): number => (bytes[at] as number) | ((bytes[at + 1] as number) << 8) | ((bytes[at + 2] as number) << 16);
    return { width: u24(24) + 1, height: u24(27) + 1 };
  }
  if (chunk === "VP8 " && bytes.length >= 30) {
    return { width: view.getUint16(26, true) & 0x3fff, height: view.getUint16(28, true) & 0x3fff };
  }
  if (chunk === "VP8L" && bytes.length >= 25) {
    const bits = view.getUint32(21, true);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  return null;
}

function jpegSize(bytes: Uint8Array, view: DataView): ImageSize | null {
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return null;
    const marker = bytes[at + 1] as number;
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2; // markers without a length
      continue;
    }
    const length = view.getUint16(at + 2);
    // start of frame: SOF0..SOF15 except DHT (c4), JPG (c8) and DAC (cc)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (at + 9 > bytes.length) return null;
      return { width: view.getUint16(at + 7), height: view.getUint16(at + 5) };
    }
    if (marker === 0xda || length < 2) return null; // image data began without a frame header
    at += 2 + length;
  }
  return null;
}
