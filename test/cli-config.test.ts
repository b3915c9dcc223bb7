import { describe, expect, it } from "vitest";
import { parseArgs, type ArgsEnvironment } from "../src/cli/args.js";
import type { CliConfig } from "../src/cli/build-config.js";
import { defaultConfigPath, parseConfigFile, settingsFromEnvironment } from "../src/cli/config.js";
import { CONFIGURABLE } from "../src/cli/flags.js";
import { UsageError } from "../src/errors.js";

const HOME = "/home/tester";
const CONFIG = `${HOME}/.config/rangeget/config`;
const URL = "http://a.test/file.bin";

/** parseArgs over an in-memory home directory: `files` by path, `modes` for stat. */
function environment(files: Record<string, string>, variables: NodeJS.ProcessEnv = {}, modes: Record<string, number> = {}): Partial<ArgsEnvironment> {
  return {
    readTextFile: async (path) => {
      const text = files[path];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
      return text;
    },
    readStdin: async () => "",
    fileMode: async (path) => modes[path] ?? 0o100600,
    variables,
    homeDir: HOME,
  };
}

async function configOf(argv: string[], env: Partial<ArgsEnvironment>): Promise<CliConfig> {
  const command = await parseArgs(argv, env);
  if (command.kind !== "download") throw new Error(`expected a download, got ${command.kind}`);
  return command.config;
}

async function usageErrorOf(argv: string[], env: Partial<ArgsEnvironment>): Promise<string> {
  const error: unknown = await parseArgs(argv, env).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(UsageError);
  return (error as UsageError).message;
}

describe("parseConfigFile", () => {
  it("reads name = value lines, bare switches, switches set to true or false, quotes, comments and blank lines", () => {
    const text = "# defaults\n\nconnections = 16\r\n  limit-rate=10M  \ninsecure\njson = false\nuser-agent = \"  spaced agent \"\nheader = X-A: 1\nheader = X-B: 2\n";
    expect(parseConfigFile(text, "/c", CONFIGURABLE).map(({ name, value, where }) => [name, value, where])).toEqual([
      ["connections", "16", "config file /c line 3"],
      ["limit-rate", "10M", "config file /c line 4"],
      ["insecure", true, "config file /c line 5"],
      ["json", false, "config file /c line 6"],
      ["user-agent", "  spaced agent ", "config file /c line 7"],
      ["header", "X-A: 1", "config file /c line 8"],
      ["header", "X-B: 2", "config file /c line 9"],
    ]);
  });

  it.each<[string, string]>([
    ["conections = 16", 'config file /c line 1: unknown option "conections"'],
    ["# ok\n--connections = 16", 'config file /c line 2: unknown option "--connections" (write long option names without dashes, e.g. "connections = 16")'],
    ["output = a.bin", "config file /c line 1: --output can only be given on the command line"],
    ["shard = 0/2", "config file /c line 1: --shard can only be given on the command line"],
    ["connections", 'config file /c line 1: connections needs a value ("connections = ...")'],
    ["insecure = maybe", 'config file /c line 1: insecure is a switch: write true or false, not "maybe"'],
    ["= 3", 'config file /c line 1: unknown option ""'],
  ])("refuses %j naming the file and line", (text, message) => {
    expect(() => parseConfigFile(text, "/c", CONFIGURABLE)).toThrow(UsageError);
    expect(() => parseConfigFile(text, "/c", CONFIGURABLE)).toThrow(message);
  });
});

describe("settingsFromEnvironment", () => {
  it("reads RANGEGET_<NAME> for every option a config file may set, and leaves other RANGEGET_ names alone", () => {
    const settings = settingsFromEnvironment(
      { RANGEGET_CONNECTIONS: "16", RANGEGET_LIMIT_RATE: "1M", RANGEGET_QUIET: "yes", RANGEGET_JOBS: "", RANGEGET_EXPECT_NODE_MAJOR: "22", RANGEGET_OUTPUT: "x" },
      CONFIGURABLE,
    );
    expect(settings.map(({ name, value, where }) => [name, value, where])).toEqual([
      ["connections", "16", "environment variable RANGEGET_CONNECTIONS"],
      ["limit-rate", "1M", "environment variable RANGEGET_LIMIT_RATE"],
      ["quiet", true, "environment variable RANGEGET_QUIET"],
    ]);
  });

  it("refuses a switch it cannot read, naming the variable", () => {
    expect(() => settingsFromEnvironment({ RANGEGET_INSECURE: "please" }, CONFIGURABLE)).toThrow(
      'environment variable RANGEGET_INSECURE: insecure is a switch: write true or false, not "please"',
    );
  });
});

describe("defaultConfigPath", () => {
  it("is under $XDG_CONFIG_HOME when it is absolute, else under ~/.config", () => {
    expect(defaultConfigPath({ XDG_CONFIG_HOME: "/xdg" }, HOME)).toBe("/xdg/rangeget/config");
    expect(defaultConfigPath({ XDG_CONFIG_HOME: "relative" }, HOME)).toBe(CONFIG);
    expect(defaultConfigPath({}, HOME)).toBe(CONFIG);
  });
});

describe("defaults: flags win, then the environment, then the config file", () => {
  const file = "connections = 16\njobs = 2\nretries = 9\nuser-agent = file-agent\ninsecure = true\n";

  it("takes the config file's values", async () => {
    const config = await configOf([URL], environment({ [CONFIG]: file }));
    expect(config.options).toMatchObject({ connections: 16, jobs: 2, retries: 9, userAgent: "file-agent", insecure: true });
  });

  it("lets the environment override the file, and flags override both", async () => {
    const env = environment({ [CONFIG]: file }, { RANGEGET_CONNECTIONS: "12", RANGEGET_JOBS: "3", RANGEGET_INSECURE: "false" });
    const config = await configOf(["-j", "5", URL], env);
    expect(config.options).toMatchObject({ connections: 12, jobs: 5, retries: 9, userAgent: "file-agent" });
    expect(config.options.insecure).toBeUndefined();
    expect((await configOf(["--insecure=false", URL], environment({ [CONFIG]: file }))).options.insecure).toBeUndefined();
  });

  it("reads --config instead of the default file, and $XDG_CONFIG_HOME's file", async () => {
    const files = { [CONFIG]: "jobs = 2\n", "/etc/rg.conf": "jobs = 7\n", "/xdg/rangeget/config": "jobs = 9\n" };
    expect((await configOf(["--config", "/etc/rg.conf", URL], environment(files))).options.jobs).toBe(7);
    expect((await configOf([URL], environment(files, { XDG_CONFIG_HOME: "/xdg" }))).options.jobs).toBe(9);
  });

  it("--no-config ignores both the file and the environment", async () => {
    const config = await configOf(["--no-config", URL], environment({ [CONFIG]: file }, { RANGEGET_CONNECTIONS: "12" }));
    expect(config.options).toEqual({});
  });

  it("adds up headers across layers, a header named higher up replacing the lower one", async () => {
    const env = environment({ [CONFIG]: "header = Authorization: Bearer file\nheader = X-File: 1\n" }, { RANGEGET_HEADER: "X-Env: 2" });
    expect((await configOf([URL], env)).options.headers).toEqual({ Authorization: "Bearer file", "X-File": "1", "X-Env": "2" });
    expect((await configOf(["-H", "authorization: Bearer flag", URL], env)).options.headers).toEqual({
      "X-File": "1",
      "X-Env": "2",
      authorization: "Bearer flag",
    });
  });

  it.each<[string, Record<string, string>, NodeJS.ProcessEnv, string]>([
    ["a bad value, with the file and line", { [CONFIG]: "# mine\nconnections = lots\n" }, {}, `config file ${CONFIG} line 2: -c/--connections must be a whole number from 1 to 64, got "lots"`],
    ["a bad value even when a flag overrides it today", { [CONFIG]: "limit-rate = fast\n" }, {}, `config file ${CONFIG} line 1: --limit-rate: invalid rate`],
    ["a bad header line", { [CONFIG]: "header = nocolon\n" }, {}, `config file ${CONFIG} line 1: -H/--header "nocolon" is not "Name: value"`],
    ["a bad environment value, with the variable", {}, { RANGEGET_TIMEOUT: "never" }, "environment variable RANGEGET_TIMEOUT: --timeout must be a number of seconds"],
    ["a missing --netrc-file named in the config", { [CONFIG]: "netrc-file = /nowhere\n" }, {}, `config file ${CONFIG} line 1: cannot read netrc file /nowhere: no such file`],
  ])("refuses %s", async (_what, files, variables, message) => {
    expect(await usageErrorOf(["-c", "4", "--limit-rate", "1M", URL], environment(files, variables))).toContain(message);
  });

  it("refuses a missing --config file, but not a missing default one", async () => {
    expect(await usageErrorOf(["--config", "/nowhere", URL], environment({}))).toBe("cannot read config file /nowhere: no such file");
    expect((await configOf([URL], environment({}))).options).toEqual({});
  });
});

describe("netrc and cookies from the command line", () => {
  const NETRC = `${HOME}/.netrc`;

  it("reads ~/.netrc when it exists, and not with --no-netrc", async () => {
    const env = environment({ [NETRC]: "machine a.test login alice password s3cret\n" });
    const config = await configOf([URL], env);
    expect(config.options.credentials?.headersFor(new globalThis.URL(URL))).toEqual({ authorization: `Basic ${Buffer.from("alice:s3cret").toString("base64")}` });
    expect((await configOf(["--no-netrc", URL], env)).options.credentials).toBeUndefined();
  });

  it("warns about a netrc others can read, naming the file but not the password", async () => {
    const env = environment({ [NETRC]: "machine a.test login alice password s3cret\n" }, {}, { [NETRC]: 0o100644 });
    const config = await configOf([URL], env);
    expect(config.warnings).toEqual([`warning: netrc ${NETRC} is open to other users (mode 0644); run chmod 600 ${NETRC}`]);
  });

  it("refuses a missing --netrc-file and a netrc it cannot parse, with the line", async () => {
    expect(await usageErrorOf(["--netrc-file", "/nowhere", URL], environment({}))).toBe("cannot read netrc file /nowhere: no such file");
    expect(await usageErrorOf([URL], environment({ [NETRC]: "machine a.test\nlogin\n" }))).toBe(`netrc ${NETRC} line 2: "login" needs a value`);
  });

  it("loads --load-cookies, and refuses a bad cookies file with the line", async () => {
    const files = { "/c.txt": "# Netscape HTTP Cookie File\na.test\tFALSE\t/\tFALSE\t0\tsid\tabc\n", "/bad.txt": "a.test FALSE / FALSE 0 sid abc\n" };
    const config = await configOf(["--load-cookies", "/c.txt", URL], environment(files));
    expect(config.options.credentials?.headersFor(new globalThis.URL(URL))).toEqual({ cookie: "sid=abc" });
    expect(await usageErrorOf(["--load-cookies", "/bad.txt", URL], environment(files))).toMatch(/^cookies file \/bad.txt line 1: expected 7 tab-separated fields/);
  });

  it("takes -U, and refuses an empty one or one with a line break", async () => {
    expect((await configOf(["-U", "agent/1.0", URL], environment({}))).options.userAgent).toBe("agent/1.0");
    expect(await usageErrorOf(["-U", "", URL], environment({}))).toBe("-U/--user-agent must not be empty");
    expect(await usageErrorOf(["-U", "a\r\nX-Evil: 1", URL], environment({}))).toBe("-U/--user-agent must not contain line breaks");
  });
});

describe("--shard", () => {
  const list = Array.from({ length: 20 }, (_, index) => `http://a.test/file-${index}.bin`).join("\n");

  it("takes this machine's share of the -i list and says so", async () => {
    const env = environment({ "/list.txt": list });
    const shares = await Promise.all([0, 1, 2].map((index) => configOf(["-i", "/list.txt", "--shard", `${index}/3`], env)));
    expect(shares.flatMap((share) => share.items.map((item) => item.url)).sort()).toEqual(list.split("\n").sort());
    shares.forEach((share, index) => {
      expect(share.notes).toEqual([`shard ${index}/3: ${share.items.length} of 20 files`]);
      expect(share.batch).toBe(true);
    });
  });

  it.each<[string[], string]>([
    [["--shard", "0/2", URL], "--shard splits an -i list; give the list with -i <file>"],
    [["-i", "/list.txt", "--shard", "2/2"], '--shard must be K/N with 0 <= K < N <= 1000000 (K counts from 0), got "2/2"'],
    [["-i", "/list.txt", "--shard", "half"], '--shard must be K/N with 0 <= K < N <= 1000000 (K counts from 0), got "half"'],
  ])("refuses %j", async (argv, message) => {
    expect(await usageErrorOf(argv, environment({ "/list.txt": list }))).toBe(message);
  });
});

describe("completion", () => {
  it("`rangeget completion` is the bash script that asks rangeget for completions", async () => {
    const command = await parseArgs(["completion"], environment({}));
    expect(command.kind).toBe("completion");
    const text = command.kind === "completion" ? command.text : "";
    expect(text).toContain("rangeget --get-yargs-completions");
    expect(text).toMatch(/^complete -o bashdefault -o default -F _rangeget_yargs_completions rangeget$/m);
  });

  it("answers a shell's request with the options, short aliases with one dash", async () => {
    const command = await parseArgs(["--get-yargs-completions", "rangeget", "--"], environment({}));
    const words = command.kind === "completion" ? command.text.split("\n") : [];
    expect(words).toEqual(expect.arrayContaining(["--netrc-file", "--load-cookies", "--shard", "--user-agent", "--no-config"]));
    expect(words.filter((word) => /^--.$/.test(word))).toEqual([]);
  });
});
