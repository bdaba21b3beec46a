// A small animated-GIF encoder for Kinema's videos: each frame quantised to a
// 6×7×6 colour cube (252 colours), LZW-compressed, looping forever.

/** @param {{width:number,height:number,fps:number,frames:Uint8ClampedArray[]}} video */
export function encodeGif(video) {
  const { width, height, fps, frames } = video;
  const out = [];
  const bytes = (...b) => out.push(...b);
  const word = (v) => bytes(v & 255, (v >> 8) & 255);
  const palette = [];
  for (let r = 0; r < 6; r++) for (let g = 0; g < 7; g++) for (let b = 0; b < 6; b++)
    palette.push(Math.round(r * 51), Math.round(g * 42.5), Math.round(b * 51));
  while (palette.length < 256 * 3) palette.push(0);
  bytes(...[..."GIF89a"].map((c) => c.charCodeAt(0)));
  word(width); word(height);
  bytes(0xf7, 0, 0);                       // global colour table of 256
  out.push(...palette);
  bytes(0x21, 0xff, 11, ...[..."NETSCAPE2.0"].map((c) => c.charCodeAt(0)), 3, 1, 0, 0, 0);
  const delay = Math.max(1, Math.round(100 / Math.max(1, fps)));
  for (const rgba of frames) {
    bytes(0x21, 0xf9, 4, 0, delay & 255, delay >> 8, 0, 0);
    bytes(0x2c); word(0); word(0); word(width); word(height); bytes(0);
    const idx = new Uint8Array(width * height);
    for (let i = 0; i < idx.length; i++) {
      const r = Math.round(rgba[4 * i] / 51), g = Math.round(rgba[4 * i + 1] / 42.5), b = Math.round(rgba[4 * i + 2] / 51);
      idx[i] = (r * 7 + g) * 6 + b;
    }
    lzw(idx, out);
  }
  bytes(0x3b);
  return new Blob([new Uint8Array(out)], { type: "image/gif" });
}

function lzw(indices, out) {
  const minCode = 8, clear = 256, end = 257;
  out.push(minCode);
  let size = minCode + 1, next = 258, dict = new Map();
  let buf = 0, bits = 0;
  const block = [];
  const emit = (code) => {
    buf |= code << bits; bits += size;
    while (bits >= 8) { block.push(buf & 255); buf >>= 8; bits -= 8; }
  };
  emit(clear);
  let prefix = indices[0];
  for (let i = 1; i < indices.length; i++) {
    const k = indices[i], key = prefix * 256 + k;
    const code = dict.get(key);
    if (code !== undefined) { prefix = code; continue; }
    emit(prefix);
    if (next < 4096) {
      dict.set(key, next++);
      if (next > (1 << size) && size < 12) size++;
    } else {
      emit(clear); dict = new Map(); size = minCode + 1; next = 258;
    }
    prefix = k;
  }
  emit(prefix); emit(end);
  if (bits > 0) block.push(buf & 255);
  for (let i = 0; i < block.length; i += 255) {
    const chunk = block.slice(i, i + 255);
    out.push(chunk.length, ...chunk);
  }
  out.push(0);
}
