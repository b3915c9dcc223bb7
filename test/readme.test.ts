import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";

const projectRoot = new URL("..", import.meta.url);

/** Every line of README's fenced code blocks, with the block's language. */
async function readmeCodeLines(): Promise<Array<{ language: string; line: string }>> {
  const text = await readFile(new URL("README.md", projectRoot), "utf8");
  const lines: Array<{ language: string; line: string }> = [];
  let language: string | undefined;
  for (const line of text.split("\n")) {
    const fence = /^```(\S*)/.exec(line);
    if (fence) language = language === undefined ? fence[1]! : undefined;
    else if (language !== undefined) lines.push({ language, line });
  }
  return lines;
}

describe("README's commands", () => {
  it("install rangeget from the tarball a clone packs, never by its unpublished registry name", async () => {
    const { version } = JSON.parse(await readFile(new URL("package.json", projectRoot), "utf8")) as { version: string };
    const tarball = `rangeget-${version}.tgz`;
    const commands = (await readmeCodeLines()).map(({ line }) => line.replace(/#.*$/, "").trim());
    const installs = commands.filter((command) => /\b(npm (install|i)|npx|npm exec)\b/.test(command) && /\brangeget\b/.test(command));
    expect(installs.length).toBeGreaterThan(0);
    for (const command of installs) {
      // `npx rangeget`, `npm install -g rangeget`: E404 today, and whoever registers the
      // name would have their code run instead.
      expect(command, command).not.toMatch(/\b(install|i|npx|exec)(\s+-{1,2}\S+)*\s+rangeget(@\S*)?(\s|$)/);
      expect(command, command).toContain(tarball);
    }
    expect(commands.some((command) => command.includes("npm pack"))).toBe(true);
  });
});
