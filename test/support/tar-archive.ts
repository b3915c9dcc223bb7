/**
 * Tar archives written by hand, header by header (POSIX ustar), so a test can build
 * what no well-behaved tool would: `..` paths, links out, devices.
 */

/** One entry: a regular file unless `type` says otherwise (ustar type flags). */
export interface TarEntry {
  path: string;
  type?: "file" | "directory" | "symlink" | "hardlink" | "character-device" | "fifo";
  linkpath?: string;
  body?: Buffer | string;
  mode?: number;
}

const TYPE_FLAGS: Record<NonNullable<TarEntry["type"]>, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  "character-device": "3",
  directory: "5",
  fifo: "6",
};

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(entry: TarEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  block.write(entry.path, 0, 100, "utf8");
  block.write(octal(entry.mode ?? (entry.type === "directory" ? 0o755 : 0o644), 8), 100, "ascii");
  block.write(octal(0, 8), 108, "ascii");
  block.write(octal(0, 8), 116, "ascii");
  block.write(octal(size, 12), 124, "ascii");
  block.write(octal(1_700_000_000, 12), 136, "ascii");
  block.write(TYPE_FLAGS[entry.type ?? "file"], 156, "ascii");
  if (entry.linkpath !== undefined) block.write(entry.linkpath, 157, 100, "utf8");
  block.write("ustar\0", 257, "ascii");
  block.write("00", 263, "ascii");
  // The checksum is summed with its own field as spaces (POSIX ustar).
  block.write(" ".repeat(8), 148, "ascii");
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(octal(sum, 7) + " ", 148, "ascii");
  return block;
}

/** The archive's bytes: each header, its body padded to 512, then two zero blocks. */
export function tarArchive(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const body = entry.body === undefined ? Buffer.alloc(0) : Buffer.from(entry.body);
    parts.push(header(entry, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
