import { describe, expect, it } from "vitest";
import { parseArgs, type ArgsEnvironment, type CliCommand } from "../src/cli/args.js";
import type { CliConfig } from "../src/cli/build-config.js";
import { parseHeaders } from "../src/cli/headers.js";
import { UsageError } from "../src/errors.js";

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const files: Record<string, string> = {
  "urls.txt": "# two files\nhttp://a.test/one.bin\n\nhttps://b.test/two.bin two-renamed.bin\n",
  "empty.txt": "# nothing here\n\n",
  "bad.txt": "http://a.test/ok\nftp://a.test/no\n",
  "ca.pem": PEM,
  "not-a-cert.txt": "hello",
};

const environment: Partial<ArgsEnvironment> = {
  readTextFile: async (path) => {
    const text = files[path];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
    return text;
  },
  readStdin: async () => "http://stdin.test/file.iso\n",
  fileMode: async () => 0o100600,
  variables: {},
  homeDir: "/home/tester",
};

async function config(...argv: string[]): Promise<CliConfig> {
  const command: CliCommand = await parseArgs(argv, environment);
  if (command.kind !== "download") throw new Error(`expected a download, got ${command.kind}`);
  return command.config;
}

async function usageError(...argv: string[]): Promise<UsageError> {
  const error: unknown = await parseArgs(argv, environment).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(UsageError);
  return error as UsageError;
}

describe("parseArgs: options become download options", () => {
  it.each<[string[], Partial<CliConfig["options"]>]>([
    [["-c", "16"], { connections: 16 }],
    [["--connections", "1"], { connections: 1 }],
    [["-c", "64"], { connections: 64 }],
    [["-c", "2", "-c", "3"], { connections: 3 }],
    [["-j", "2"], { jobs: 2 }],
    [["--jobs", "100"], { jobs: 100 }],
    [["--min-split", "512K"], { minSplit: 512 * 1024 }],
    [["--min-split", "4MiB"], { minSplit: 4 * 1024 * 1024 }],
    [["--min-split", "1G"], { minSplit: 1024 ** 3 }],
    [["--retries", "0"], { retries: 0 }],
    [["--retries", "12"], { retries: 12 }],
    [["--timeout", "2.5"], { timeout: 2.5 }],
    [["--timeout", "30"], { timeout: 30 }],
    [["--limit-rate", "10M"], { limitRate: 10 * 1024 * 1024 }],
    [["--limit-rate", "512K"], { limitRate: 512 * 1024 }],
    [["--checksum", "sha256=" + "AB".repeat(32)], { checksum: { algorithm: "sha256", hex: "ab".repeat(32), accepted: ["ab".repeat(32)] } }],
    [["--checksum", "md5=" + "0".repeat(32)], { checksum: { algorithm: "md5", hex: "0".repeat(32), accepted: ["0".repeat(32)] } }],
    [["--if-changed"], { ifChanged: true }],
    [["-f"], { force: true }],
    [["--force"], { force: true }],
    [["--continue"], { continue: true }],
    [["--max-connections-per-host", "2"], { maxConnectionsPerHost: 2 }],
    [["--max-connections-per-host", "4", "-c", "8"], { maxConnectionsPerHost: 4, connections: 8 }],
    [["-d", "out"], { dir: "out" }],
    [["-H", "Authorization: Bearer x"], { headers: { Authorization: "Bearer x" } }],
    [["--ca", "ca.pem"], { ca: PEM }],
    [["--insecure"], { insecure: true }],
    [["--extract", "out"], { extract: "out" }],
    [["--extract", "out", "--stream-window", "8M"], { extract: "out", streamWindow: 8 * 1024 * 1024 }],
    [["--proxy", "socks5h://u:p@127.0.0.1:1080"], { proxy: "socks5h://u:p@127.0.0.1:1080" }],
    [["--proxy", "10.0.0.1:3128", "--noproxy", "example.com,10.0.0.0/8"], { proxy: "10.0.0.1:3128", noProxy: "example.com,10.0.0.0/8" }],
    [["--proxy", ""], { proxy: "" }],
    [["--noproxy", ""], { noProxy: "" }],
  ])("%j", async (flags, expected) => {
    const parsed = await config(...flags, "http://example.test/file");
    expect(parsed.options).toEqual(expected);
  });

  it("leaves unset options to the engine's defaults", async () => {
    const parsed = await config("http://example.test/file");
    expect(parsed).toEqual({
      items: [{ url: "http://example.test/file" }],
      options: {},
      stdout: false,
      json: false,
      stats: false,
      quiet: false,
      progress: undefined,
      progressFd: undefined,
      verbose: false,
      warnings: [],
      notes: [],
      batch: false,
    });
  });

  it("reads --progress, --progress-fd and -v; -q is --progress none unless --progress is given", async () => {
    const pick = async (...args: string[]) => {
      const { progress, progressFd, verbose } = await config(...args, "http://example.test/file");
      return { progress, progressFd, verbose };
    };
    expect(await pick("--progress", "json", "--progress-fd", "3", "-v")).toEqual({ progress: "json", progressFd: 3, verbose: true });
    expect(await pick("-q")).toEqual({ progress: "none", progressFd: undefined, verbose: false });
    expect(await pick("-q", "--progress", "JSON")).toEqual({ progress: "json", progressFd: undefined, verbose: false });
    expect(await pick("--verbose", "--progress", "plain")).toEqual({ progress: "plain", progressFd: undefined, verbose: true });
  });

  it("reads the output format flags", async () => {
    const parsed = await config("--json", "--stats", "-q", "http://example.test/file");
    expect([parsed.json, parsed.stats, parsed.quiet]).toEqual([true, true, true]);
  });

  it("warns about --insecure", async () => {
    const parsed = await config("--insecure", "https://example.test/file");
    expect(parsed.warnings).toHaveLength(1);
    expect(parsed.warnings[0]).toMatch(/--insecure/);
  });

  it("keeps a URL that looks like a number as text, and options after URLs", async () => {
    const parsed = await config("http://example.test/1", "-c", "2");
    expect(parsed.items).toEqual([{ url: "http://example.test/1" }]);
    expect(parsed.options.connections).toBe(2);
  });
});

describe("parseArgs: what to download", () => {
  it("takes -o for a single URL", async () => {
    expect((await config("-o", "x.bin", "http://example.test/file")).items).toEqual([{ url: "http://example.test/file", output: "x.bin" }]);
  });

  it("takes several URLs in order", async () => {
    const parsed = await config("http://a.test/1", "https://b.test/2");
    expect(parsed.items.map((item) => item.url)).toEqual(["http://a.test/1", "https://b.test/2"]);
  });

  it("appends the -i file's lines after the arguments", async () => {
    const parsed = await config("-i", "urls.txt", "http://first.test/x");
    expect(parsed.items).toEqual([
      { url: "http://first.test/x" },
      { url: "http://a.test/one.bin" },
      { url: "https://b.test/two.bin", output: "two-renamed.bin" },
    ]);
  });

  it("reads -i - from stdin", async () => {
    expect((await config("-i", "-")).items).toEqual([{ url: "http://stdin.test/file.iso" }]);
  });

  it("accepts -o when the -i file holds a single URL", async () => {
    const parsed = await parseArgs(["-i", "-", "-o", "mine.iso"], environment);
    expect(parsed.kind === "download" && parsed.config.items).toEqual([{ url: "http://stdin.test/file.iso", output: "mine.iso" }]);
  });

  it("combines repeated headers as RFC 9110 says, Cookie with semicolons", () => {
    expect(parseHeaders(["X-A: 1", "x-a: 2", "Cookie: a=1", "cookie: b=2", "X-Empty:"])).toEqual({
      "X-A": "1, 2",
      Cookie: "a=1; b=2",
      "X-Empty": "",
    });
  });
});

describe("parseArgs: help and version", () => {
  it("groups --help and shows the examples", async () => {
    const command = await parseArgs(["--help"], environment);
    expect(command.kind).toBe("help");
    const text = command.kind === "help" ? command.text : "";
    for (const group of ["Output:", "Connections:", "Access:", "Retries and time:", "Verification:", "Output format:", "Defaults:", "Examples:"]) {
      expect(text).toContain(group);
    }
    for (const flag of ["--output", "--dir", "--input-file", "--shard", "--connections", "--jobs", "--min-split", "--retries", "--timeout",
      "--limit-rate", "--checksum", "--if-changed", "--force", "--continue", "--max-connections-per-host", "--header", "--user-agent",
      "--netrc-file", "--no-netrc", "--load-cookies", "--ca", "--insecure", "--json", "--stats", "--quiet", "--extract", "--stream-window",
      "--config", "--no-config", "rangeget completion"]) {
      expect(text).toContain(flag);
    }
    expect(text.split("Examples:")[1]?.trim().split("\n").filter((line) => line.trim().startsWith("rangeget "))).toHaveLength(7);
    expect(text).not.toContain("[string]");
  });

  it.each([40, 60, 80, 100, 200])("keeps every example command whole on one line at %i columns", async (columns) => {
    const command = await parseArgs(["--help"], { ...environment, columns });
    const examples = (command.kind === "help" ? command.text : "").split("Examples:")[1]!.split("\n").filter((line) => line !== "");
    expect(examples).toHaveLength(14);
    examples.forEach((line, index) => {
      // A purpose line, then its command: a URL or option never starts a line of its own.
      if (index % 2 === 0) expect(line).toMatch(/^ {2}[a-z0-9].*:$/);
      else expect(line).toMatch(/^ {4}rangeget (-[a-z] |--[a-z]).*(https:\/\/\S+|--json|\d+\/\d+|\| tar x)$/);
    });
  });

  it("answers --help even with other arguments", async () => {
    expect((await parseArgs(["-c", "3", "--help", "http://x.test/"], environment)).kind).toBe("help");
  });

  it("reads --version from package.json", async () => {
    const command = await parseArgs(["--version"], {});
    expect(command).toEqual({ kind: "version", text: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  });
});

describe("parseArgs: -o - and --extract", () => {
  it("takes -o - as the file on stdout, with no output name", async () => {
    const parsed = await config("-o", "-", "-c", "4", "http://example.test/file");
    expect(parsed.stdout).toBe(true);
    expect(parsed.items).toEqual([{ url: "http://example.test/file" }]);
    expect(parsed.options).toEqual({ connections: 4 });
  });

  it("takes --stream-window with -o -", async () => {
    expect((await config("-o", "-", "--stream-window", "16MiB", "http://example.test/file")).options).toEqual({ streamWindow: 16 * 1024 * 1024 });
  });

  it("takes -o - when stdout is a pipe or a file", async () => {
    const command = await parseArgs(["-o", "-", "http://example.test/file"], { ...environment, stdoutIsTTY: false });
    expect(command.kind === "download" && command.config.stdout).toBe(true);
  });

  it("refuses -o - when stdout is a terminal", async () => {
    const error: unknown = await parseArgs(["-o", "-", "http://example.test/file"], { ...environment, stdoutIsTTY: true }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toMatch(/-o - would write the file to the terminal; pipe it/);
    expect((error as UsageError).exitCode).toBe(2);
  });

  it("describes -o - and --extract in --help", async () => {
    const command = await parseArgs(["--help"], environment);
    expect(command.kind === "help" && command.text).toMatch(/'-' writes to stdout in order .*no resume/s);
    expect(command.kind === "help" && command.text).toMatch(/--extract +<dir> the file is a tar archive/);
  });

  it.each<[string[], RegExp]>([
    [["-o", "-", "-i", "-"], /-o - writes one file to stdout; it cannot be used with -i/],
    [["-o", "-", "http://x.test/a", "http://x.test/b"], /names one file but 2 URLs/],
    [["-o", "-", "--json", "http://x.test/a"], /-o - sends the file to stdout, where --json would go/],
    [["-o", "-", "--if-changed", "http://x.test/a"], /-o - keeps no file to compare with/],
    [["--extract", "out", "http://x.test/a", "http://x.test/b"], /--extract unpacks one archive but 2 URLs were given/],
    [["--extract", "out", "-o", "x.tar", "http://x.test/a"], /--extract and -o\/--output both say where the download goes/],
    [["--extract", "", "http://x.test/a"], /--extract must not be empty/],
    [["--stream-window", "8M", "http://x.test/a"], /--stream-window applies only to -o - and --extract/],
    [["-o", "-", "--stream-window", "512K", "http://x.test/a"], /--stream-window must be at least 1MiB, got "512K"/],
    [["-o", "-", "--stream-window", "lots", "http://x.test/a"], /--stream-window/],
  ])("refuses %j", async (argv, message) => {
    const error = await usageError(...argv);
    expect(error.message).toMatch(message);
  });
});

describe("parseArgs: bad input is one clear UsageError", () => {
  it.each<[string[], RegExp]>([
    [["--bogus", "http://x.test/"], /unknown option --bogus/],
    [["-z", "http://x.test/"], /unknown option -z/],
    [["--mirror", "http://m.test/", "http://x.test/", "http://y.test/"], /--mirror names copies of one file but 2 URLs were given/],
    [["--mirror", "ftp://m.test/", "http://x.test/"], /not an http or https URL/],
    [["--no-json", "http://x.test/"], /unknown option --no-json/],
    [[], /no URL given/],
    [["-q"], /no URL given/],
    [["-i", "empty.txt"], /no URL in empty.txt/],
    [["-c", "0", "http://x.test/"], /-c\/--connections must be a whole number from 1 to 64, got "0"/],
    [["-c", "65", "http://x.test/"], /from 1 to 64/],
    [["-c", "2.5", "http://x.test/"], /from 1 to 64/],
    [["-c", "eight", "http://x.test/"], /from 1 to 64/],
    [["-c"], /option -c needs a value/],
    [["-j", "0", "http://x.test/"], /-j\/--jobs must be a whole number 1 or more/],
    [["--retries", "-1", "http://x.test/"], /--retries/],
    [["--retries", "1.5", "http://x.test/"], /--retries must be a whole number from 0 to 1000, got "1.5"/],
    [["--timeout", "0", "http://x.test/"], /--timeout must be a number of seconds greater than 0/],
    [["--timeout", "soon", "http://x.test/"], /--timeout/],
    [["--min-split", "lots", "http://x.test/"], /--min-split/],
    [["--min-split", "0", "http://x.test/"], /--min-split must be at least 1 byte/],
    [["--limit-rate", "fast", "http://x.test/"], /--limit-rate: invalid rate/],
    [["--limit-rate", "0", "http://x.test/"], /--limit-rate/],
    [["--checksum", "sha256=abc", "http://x.test/"], /--checksum: invalid checksum/],
    [["--checksum", "crc32=" + "0".repeat(8), "http://x.test/"], /--checksum/],
    [["--checksum", "sha256=" + "0".repeat(64), "http://x.test/a", "http://x.test/b"], /--checksum verifies one file but 2 URLs/],
    [["-o", "out.bin", "http://x.test/a", "http://x.test/b"], /-o\/--output names one file but 2 URLs/],
    [["-o", "out.bin", "-i", "urls.txt"], /-o\/--output names one file but 2 URLs/],
    [["-o", "", "http://x.test/a"], /-o\/--output must not be empty/],
    [["--max-connections-per-host", "0", "http://x.test/a"], /--max-connections-per-host must be a whole number 1 or more, got "0"/],
    [["--max-connections-per-host", "two", "http://x.test/a"], /--max-connections-per-host must be a whole number/],
    [["--max-connections-per-host", "-1", "http://x.test/a"], /--max-connections-per-host/],
    [["--continue", "--force", "http://x.test/a"], /--continue keeps a partial output and --force discards it/],
    [["ftp://x.test/file"], /"ftp:\/\/x.test\/file" is not an http or https URL/],
    [["ftp://user:secret@x.test/file"], /"ftp:\/\/user:\*\*\*@x.test\/file" is not an http or https URL/],
    [["file:///etc/passwd"], /not an http or https URL/],
    // curl, wget and aria2c would assume http://; rangeget asks, rather than choose clear text for the user.
    [["example.com/file"], /^"example.com\/file" has no scheme; add https:\/\/ \(or http:\/\/\) in front of it$/],
    [["localhost:8080/file"], /^"localhost:8080\/file" has no scheme; add https:\/\//],
    [["127.0.0.1/file"], /^"127.0.0.1\/file" has no scheme/],
    [["nonsense"], /^"nonsense" is not a URL/],
    [["-H", "no colon here", "http://x.test/"], /-H\/--header "no colon here" is not "Name: value"/],
    [["-H", ": value", "http://x.test/"], /is not "Name: value"/],
    [["-H", "Bad Name: v", "http://x.test/"], /is not "Name: value"/],
    [["-H", "Range: bytes=0-1", "http://x.test/"], /Range is managed by rangeget/],
    [["-H", "Accept-Encoding: gzip", "http://x.test/"], /Accept-Encoding is managed by rangeget/],
    [["-i", "missing.txt"], /cannot read input file missing.txt: no such file/],
    [["-i", "bad.txt"], /bad.txt line 2: "ftp:\/\/a.test\/no" is not an http or https URL/],
    [["--proxy", "ftp://user:secret@p.test:21", "http://x.test/"], /^--proxy: "ftp:\/\/user:\*\*\*@p.test:21" is not a proxy URL rangeget speaks/],
    [["--proxy", "socks4://p.test:1080", "http://x.test/"], /SOCKS4 is not supported/],
    [["--ca", "missing.pem", "https://x.test/"], /cannot read --ca file missing.pem: no such file/],
    [["--ca", "not-a-cert.txt", "https://x.test/"], /--ca file not-a-cert.txt holds no PEM certificate/],
    [["-i", "urls.txt", "http://b.test/x", "-o", "same"], /-o\/--output names one file/],
    [["--progress", "fancy", "http://x.test/"], /--progress must be one of bar, plain, json, none, got "fancy"/],
    [["--progress-fd", "0", "http://x.test/"], /--progress-fd must be a whole number from 1/],
    [["--progress-fd", "1", "--json", "http://x.test/"], /--progress-fd 1 is stdout, where --json writes its results/],
    [["--progress-fd", "1", "-o", "-", "http://x.test/"], /--progress-fd 1 is stdout, where -o - writes the file/],
  ])("%j", async (argv, message) => {
    const error = await usageError(...argv);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain("\n");
  });

  it("a RANGEGET_PROXY that is not a proxy URL names the variable, its password hidden", async () => {
    const error: unknown = await parseArgs(["http://x.test/"], { ...environment, variables: { RANGEGET_PROXY: "gopher://u:pw-secret@p.test:70" } }).catch(
      (thrown: unknown) => thrown,
    );
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(/^environment variable RANGEGET_PROXY: --proxy: "gopher:\/\/u:\*\*\*@p.test:70" is not a proxy URL/);
    expect((error as Error).message).not.toContain("pw-secret");
  });

  it("refuses two explicit outputs that are the same file", async () => {
    files["dupes.txt"] = "http://a.test/1 same.bin\nhttp://a.test/2 ./same.bin\n";
    const error = await usageError("-i", "dupes.txt");
    expect(error.message).toMatch(/http:\/\/a.test\/1 and http:\/\/a.test\/2 would both be saved as .\/same.bin/);
  });
});
