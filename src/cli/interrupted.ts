/**
 * The lines an interrupt ends a run with, saying what is true of each file: its state
 * saved (the same command resumes), nothing saved (a plain stream from a server
 * without ranges, an unpacking: the same command starts over), or not started. Pure:
 * the files' results are added as they end; only those that kept nothing are kept.
 */
import type { DownloadResult } from "../types.js";

export class InterruptedFiles {
  #saved = 0;
  /** One line per file whose bytes were lost: the library's message, with the file's label in a batch. */
  readonly #lost: string[] = [];

  /** Counts `result` when the interrupt stopped it; `label` names the file in a batch (undefined for one file). */
  add(result: DownloadResult, label: string | undefined): void {
    if (result.error?.code !== "ERR_ABORTED") return;
    // A result from a library that did not say what it kept had its state saved: the promise of every abort before `kept`.
    const kept = result.error.kept ?? "state";
    if (kept === "state") this.#saved += 1;
    else if (kept === "nothing") this.#lost.push(`${label === undefined ? "" : `${label}: `}${result.error.message}`);
  }

  /** The lines to print after `rangeget: `, in this order: files that kept nothing, then the state saved, or that nothing had started. */
  lines(): string[] {
    const saved =
      this.#saved === 0
        ? []
        : [this.#lost.length === 0 ? "interrupted: state saved; run the same command again to resume" : "interrupted: the other files' state is saved; run the same command again to resume them"];
    const lines = [...this.#lost, ...saved];
    return lines.length > 0 ? lines : ["interrupted before anything was fetched; run the same command again to start"];
  }
}
