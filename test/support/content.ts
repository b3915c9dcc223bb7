import { createCipheriv, createHash } from "node:crypto";

const CHUNK = 1 << 20;

/** Deterministic pseudo-random bytes: AES-128-CTR keystream keyed by the seed. */
export function makeContent(size: number, seed = 1): Buffer {
  const material = createHash("sha256").update(`rangeget-content:${seed}`).digest();
  const cipher = createCipheriv("aes-128-ctr", material.subarray(0, 16), material.subarray(16, 32));
  const out = Buffer.allocUnsafe(size);
  const zeros = Buffer.alloc(Math.min(CHUNK, size));
  // Chunked so a 300 MiB file never needs a second 300 MiB temporary.
  for (let off = 0; off < size; off += CHUNK) {
    const n = Math.min(CHUNK, size - off);
    cipher.update(zeros.subarray(0, n)).copy(out, off);
  }
  return out;
}

export function sha256(buf: Buffer): string {
  return createHash("sha256").update(buf).digest("hex");
}
