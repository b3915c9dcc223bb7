import { describe, expect, it } from "vitest";
import { parseInputFile, type InputFileEntry } from "../src/cli/input-file.js";
import { UsageError } from "../src/errors.js";

describe("parseInputFile", () => {
  it.each<[string, string, InputFileEntry[]]>([
    ["an empty file", "", []],
    ["only comments and blank lines", "# a comment\n\n   \n\t# indented comment\n", []],
    ["one URL", "http://a.test/x.bin", [{ url: "http://a.test/x.bin", mirrors: [], line: 1 }]],
    ["a URL and an output", "https://a.test/x.bin  mine.bin", [{ url: "https://a.test/x.bin", mirrors: [], output: "mine.bin", line: 1 }]],
    ["a tab between URL and output", "https://a.test/x\tout/x.bin", [{ url: "https://a.test/x", mirrors: [], output: "out/x.bin", line: 1 }]],
    ["surrounding spaces trimmed", "   http://a.test/x   \n", [{ url: "http://a.test/x", mirrors: [], line: 1 }]],
    [
      "line numbers count comments and blanks",
      "# list\n\nhttp://a.test/1\n# skip\nhttp://a.test/2 two.bin\n",
      [
        { url: "http://a.test/1", mirrors: [], line: 3 },
        { url: "http://a.test/2", mirrors: [], output: "two.bin", line: 5 },
      ],
    ],
    ["CRLF line endings", "http://a.test/1\r\nhttp://a.test/2\r\n", [
      { url: "http://a.test/1", mirrors: [], line: 1 },
      { url: "http://a.test/2", mirrors: [], line: 2 },
    ]],
    ["an output in a subdirectory, with dots in names", "http://a.test/x sub/..hidden/x..bin", [{ url: "http://a.test/x", mirrors: [], output: "sub/..hidden/x..bin", line: 1 }]],
    ["a UTF-8 byte order mark", "\uFEFFhttp://a.test/1\n", [{ url: "http://a.test/1", mirrors: [], line: 1 }]],
    ["a fragment is part of the URL, not a comment", "http://a.test/x#part", [{ url: "http://a.test/x#part", mirrors: [], line: 1 }]],
    [
      "tab-separated copies of one file, then an output",
      "http://a.test/x\thttp://b.test/x\thttps://c.test/x  x.bin",
      [{ url: "http://a.test/x", mirrors: ["http://b.test/x", "https://c.test/x"], output: "x.bin", line: 1 }],
    ],
  ])("%s", (_name, text, expected) => {
    expect(parseInputFile(text)).toEqual(expected);
  });

  it.each<[string, string, RegExp]>([
    ["a URL that is not http", "http://a.test/ok\n\nftp://a.test/no\n", /^list.txt line 3: "ftp:\/\/a.test\/no" is not an http or https URL/],
    ["text that is not a URL", "# c\nnot-a-url\n", /^list.txt line 2: "not-a-url" is not a URL/],
    ["three fields", "http://a.test/x my file.bin", /^list.txt line 1: expected "<url>\[<TAB>mirror...\] \[output\]" but found 1 more field after the output/],
    ["a mirror that is not a URL", "http://a.test/x\tftp://b.test/x", /^list.txt line 1: "ftp:\/\/b.test\/x" is not an http or https URL/],
    ["words that are not a URL", "not a url", /^list.txt line 1: "not" is not a URL; give an absolute http:\/\/ or https:\/\/ URL$/],
    ["a URL without its scheme", "example.com/f.iso f.iso", /^list.txt line 1: "example.com\/f.iso" has no scheme; add https:\/\/ \(or http:\/\/\) in front of it$/],
    ["an output that climbs out", "http://a.test/x ../../etc/passwd", /^list.txt line 1: the output "..\/..\/etc\/passwd" climbs out with ".."/],
    ["an output that climbs out on Windows", "http://a.test/x sub\\..\\..\\boot.ini", /^list.txt line 1: the output .* climbs out with ".."/],
    ["an absolute output", "http://a.test/x /etc/passwd", /^list.txt line 1: the output "\/etc\/passwd" is an absolute path/],
    ["an absolute output on Windows", "http://a.test/x C:\\boot.ini", /^list.txt line 1: the output .* is an absolute path/],
  ])("names the line of %s", (_name, text, message) => {
    expect(() => parseInputFile(text, "list.txt")).toThrow(UsageError);
    expect(() => parseInputFile(text, "list.txt")).toThrow(message);
  });
});
