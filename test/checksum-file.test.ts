import { describe, expect, it } from "vitest";
import { checksumFor, parseChecksumList } from "../src/checksum-file.js";
import { UsageError } from "../src/errors.js";

const A64 = "a".repeat(64);
const B64 = "b".repeat(64);
const C128 = "c".repeat(128);
const D32 = "d".repeat(32);

function entriesOf(text: string) {
  return parseChecksumList(text, "SUMS").entries.map(({ name, algorithm, hex }) => ({ name, algorithm, hex }));
}

describe("parseChecksumList", () => {
  it.each([
    ["GNU text mode (two spaces)", `${A64}  node-v22.tar.xz`, { name: "node-v22.tar.xz", algorithm: "sha256", hex: A64 }],
    ["GNU binary mode (*)", `${A64} *ubuntu.iso`, { name: "ubuntu.iso", algorithm: "sha256", hex: A64 }],
    ["shasum universal mode (^)", `${A64} ^file.bin`, { name: "file.bin", algorithm: "sha256", hex: A64 }],
    ["one space, as some scripts write", `${A64} file.bin`, { name: "file.bin", algorithm: "sha256", hex: A64 }],
    ["upper-case hex", `${A64.toUpperCase()}  f`, { name: "f", algorithm: "sha256", hex: A64 }],
    ["a name with spaces", `${A64}  my file (1).iso`, { name: "my file (1).iso", algorithm: "sha256", hex: A64 }],
    ["a leading ./", `${A64}  ./dist/app.tgz`, { name: "dist/app.tgz", algorithm: "sha256", hex: A64 }],
    ["GNU escapes (leading backslash)", `\\${A64}  a\\\\b\\nc`, { name: "a\\b\nc", algorithm: "sha256", hex: A64 }],
    ["sha512 by length", `${C128}  big.img`, { name: "big.img", algorithm: "sha512", hex: C128 }],
    ["md5 by length", `${D32}  old.zip`, { name: "old.zip", algorithm: "md5", hex: D32 }],
    ["sha1 by length", `${"e".repeat(40)}  x`, { name: "x", algorithm: "sha1", hex: "e".repeat(40) }],
    ["sha384 by length", `${"f".repeat(96)}  x`, { name: "x", algorithm: "sha384", hex: "f".repeat(96) }],
    ["sha224 (no algorithm rangeget verifies)", `${"1".repeat(56)}  x`, { name: "x", algorithm: undefined, hex: "1".repeat(56) }],
    ["BSD", `SHA256 (ubuntu.iso) = ${A64}`, { name: "ubuntu.iso", algorithm: "sha256", hex: A64 }],
    ["BSD MD5", `MD5 (a b.txt) = ${D32}`, { name: "a b.txt", algorithm: "md5", hex: D32 }],
    ["BSD SHA512", `SHA512 (x) = ${C128}`, { name: "x", algorithm: "sha512", hex: C128 }],
    ["OpenSSL 3 dgst", `SHA2-256(x.bin)= ${A64}`, { name: "x.bin", algorithm: "sha256", hex: A64 }],
    ["OpenSSL 1 dgst", `SHA256(x.bin)= ${A64}`, { name: "x.bin", algorithm: "sha256", hex: A64 }],
    ["BSD BLAKE2b (not verified)", `BLAKE2b (x) = ${C128}`, { name: "x", algorithm: undefined, hex: C128 }],
  ] as const)("reads %s", (_what, line, entry) => {
    expect(entriesOf(`${line}\n`)).toEqual([entry]);
  });

  it("skips what is not a checksum line: comments, blank lines, a PGP clear-signed wrapper, CRLF line ends", () => {
    const text = [
      "-----BEGIN PGP SIGNED MESSAGE-----",
      "Hash: SHA256",
      "",
      "# release 1.2",
      `${A64}  a.tar.gz\r`,
      `${B64} *b.zip\r`,
      "-----BEGIN PGP SIGNATURE-----",
      "iQIzBAEBCAAdFiEEabcdefabcdefabcdefabcdefabcdefabcdQFAmX",
      "-----END PGP SIGNATURE-----",
    ].join("\n");
    expect(entriesOf(text).map((entry) => entry.name)).toEqual(["a.tar.gz", "b.zip"]);
  });

  it("numbers the lines for messages", () => {
    expect(parseChecksumList(`# x\n\n${A64}  a\n`, "SUMS").entries[0]?.line).toBe(3);
  });

  it.each([
    ["an empty file", ""],
    ["prose", "these are not the sums you are looking for\n"],
    ["an HTML error page", "<html><body>404 Not Found</body></html>"],
  ])("refuses %s as a usage error naming the file", (_what, text) => {
    expect(() => parseChecksumList(text, "checksum file SUMS")).toThrow(UsageError);
    expect(() => parseChecksumList(text, "checksum file SUMS")).toThrow(/^checksum file SUMS holds no checksum line/);
  });

  it("refuses a BSD line whose digest does not fit its tag", () => {
    expect(() => parseChecksumList(`SHA256 (x) = ${D32}\n`, "SUMS")).toThrow("SUMS line 1: a SHA256 digest has 64 hex digits, not 32");
  });
});

describe("checksumFor", () => {
  const list = parseChecksumList(
    [
      `${A64}  ubuntu.iso`,
      `${B64}  ubuntu-server.iso`,
      `${D32}  ubuntu.iso`,
      `${"1".repeat(64)}  win-x64/node.exe`,
      `${"2".repeat(64)}  win-x86/node.exe`,
      `${"3".repeat(64)}  docs/manual.pdf`,
      `${"4".repeat(56)}  odd.bin`,
    ].join("\n"),
    "checksum file SHA256SUMS",
  );
  const sha256 = (hex: string) => ({ algorithm: "sha256", hex, accepted: [hex] });

  it.each([
    ["the output's name; sha256 over the md5 of the same name", { outputName: "ubuntu.iso", url: "https://h/x/other.iso" }, sha256(A64)],
    ["the URL's last segment when -o renamed it", { outputName: "renamed.iso", url: "https://h/releases/ubuntu-server.iso" }, sha256(B64)],
    ["the output's name before the URL's", { outputName: "ubuntu.iso", url: "https://h/ubuntu-server.iso" }, sha256(A64)],
    ["a listed path that ends the URL's path", { outputName: "node.exe", url: "https://nodejs.org/dist/v22/win-x86/node.exe" }, sha256("2".repeat(64))],
    ["a percent-encoded URL", { outputName: "x", url: "https://h/v1/win-x64/node%2Eexe" }, sha256("1".repeat(64))],
    ["a listed path by its base name when only one has it", { outputName: "manual.pdf", url: "https://h/get?id=3" }, sha256("3".repeat(64))],
  ] as const)("finds %s", (_what, lookup, expected) => {
    expect(checksumFor(list, lookup)).toEqual(expected);
  });

  it("refuses a name it does not list, naming the file and both names", () => {
    expect(() => checksumFor(list, { outputName: "a.iso", url: "https://h/b.iso" })).toThrow(
      'checksum file SHA256SUMS has no checksum for "a.iso" or "b.iso"; name the output as the file lists it (-o), or check the file',
    );
    expect(() => checksumFor(list, { outputName: "a.iso", url: "https://h/a.iso" })).toThrow('has no checksum for "a.iso";');
  });

  it("refuses a base name that two listed paths share with different digests", () => {
    expect(() => checksumFor(list, { outputName: "node.exe", url: "https://h/node.exe?x" })).toThrow(
      /lists different sha256 digests for "win-x64\/node.exe" \(line 4\) and "win-x86\/node.exe" \(line 5\)/,
    );
  });

  it("refuses an entry whose only digest is of an algorithm it does not verify", () => {
    expect(() => checksumFor(list, { outputName: "odd.bin", url: "https://h/odd.bin" })).toThrow(UsageError);
    expect(() => checksumFor(list, { outputName: "odd.bin", url: "https://h/odd.bin" })).toThrow("line 7 gives \"odd.bin\" only a digest rangeget does not verify");
  });

  it("refuses two different digests of one algorithm for one name", () => {
    const twice = parseChecksumList(`${A64}  f\n${B64}  f\n`, "SUMS");
    expect(() => checksumFor(twice, { outputName: "f", url: "https://h/f" })).toThrow(/different sha256 digests/);
  });
});
