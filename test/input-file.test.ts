import { describe, expect, it } from "vitest";
import { parseInputFile, type InputFileEntry } from "../src/cli/input-file.js";
import { UsageError } from "../src/errors.js";

describe("parseInputFile", () => {
  it.each<[string, string, InputFileEntry[]]>([
    ["an empty file", "", []],
    ["only comments and blank lines", "# a comment\n\n   \n\t# indented comment\n", []],
    ["one URL", "http://a.test/x.bin", [{ url: "http://a.test/x.bin", line: 1 }]],
    ["a URL and an output", "https://a.test/x.bin  mine.bin", [{ url: "https://a.test/x.bin", output: "mine.bin", line: 1 }]],
    ["a tab between URL and output", "https://a.test/x\tout/x.bin", [{ url: "https://a.test/x", output: "out/x.bin", line: 1 }]],
    ["surrounding spaces trimmed", "   http://a.test/x   \n", [{ url: "http://a.test/x", line: 1 }]],
    [
      "line numbers count comments and blanks",
      "# list\n\nhttp://a.test/1\n# skip\nhttp://a.test/2 two.bin\n",
      [
        { url: "http://a.test/1", line: 3 },
        { url: "http://a.test/2", output: "two.bin", line: 5 },
      ],
    ],
    ["CRLF line endings", "http://a.test/1\r\nhttp://a.test/2\r\n", [
      { url: "http://a.test/1", line: 1 },
      { url: "http://a.test/2", line: 2 },
    ]],
    ["a UTF-8 byte order mark", "\uFEFFhttp://a.test/1\n", [{ url: "http://a.test/1", line: 1 }]],
    ["a fragment is part of the URL, not a comment", "http://a.test/x#part", [{ url: "http://a.test/x#part", line: 1 }]],
  ])("%s", (_name, text, expected) => {
    expect(parseInputFile(text)).toEqual(expected);
  });

  it.each<[string, string, RegExp]>([
    ["a URL that is not http", "http://a.test/ok\n\nftp://a.test/no\n", /^list.txt line 3: "ftp:\/\/a.test\/no" is not an http or https URL/],
    ["text that is not a URL", "# c\nnot-a-url\n", /^list.txt line 2: "not-a-url" is not a URL/],
    ["three fields", "http://a.test/x my file.bin", /^list.txt line 1: expected "<url> \[output\]" but found 3 fields/],
  ])("names the line of %s", (_name, text, message) => {
    expect(() => parseInputFile(text, "list.txt")).toThrow(UsageError);
    expect(() => parseInputFile(text, "list.txt")).toThrow(message);
  });
});
