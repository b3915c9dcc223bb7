// A terminal screen just capable enough for what cli-progress and readline write:
// text, CR/LF (as a tty's onlcr turns LF into CRLF), cursor moves (CSI A/B/C/D/G),
// line and screen-below erases (CSI K/J); modes (cursor, wrap) are ignored. Tests read
// what a user would see, not the escape codes.

export class Screen {
  private readonly rows: string[][] = [[]];
  private row = 0;
  private column = 0;

  write(text: string): void {
    for (let index = 0; index < text.length; index++) {
      const char = text[index]!;
      if (char === "\x1b") {
        index = this.escape(text, index);
      } else if (char === "\n") {
        this.moveTo(this.row + 1, 0);
      } else if (char === "\r") {
        this.column = 0;
      } else {
        const line = this.line(this.row);
        while (line.length < this.column) line.push(" ");
        line[this.column++] = char;
      }
    }
  }

  /** The screen's lines, trailing spaces and trailing empty lines removed. */
  lines(): string[] {
    const lines = this.rows.map((row) => row.join("").trimEnd());
    while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
    return lines;
  }

  /** Handles the sequence starting at `start` (an ESC); returns the index of its last character. */
  private escape(text: string, start: number): number {
    if (text[start + 1] !== "[") return start + 1; // ESC 7 / ESC 8 and the like
    const match = /^\[(\??)([0-9;]*)([A-Za-z])/.exec(text.slice(start + 1));
    if (match === null) return start;
    const [whole, privateMode, digits, command] = match as unknown as [string, string, string, string];
    const count = digits === "" ? 1 : Number(digits.split(";")[0]);
    if (privateMode === "") this.control(command, digits === "" ? undefined : count, count);
    return start + whole.length;
  }

  private control(command: string, argument: number | undefined, count: number): void {
    switch (command) {
      case "A":
        this.moveTo(Math.max(0, this.row - count), this.column);
        break;
      case "B":
        this.moveTo(this.row + count, this.column);
        break;
      case "C":
        this.column += count;
        break;
      case "D":
        this.column = Math.max(0, this.column - count);
        break;
      case "G":
        this.column = count - 1;
        break;
      case "K": {
        const line = this.line(this.row);
        if ((argument ?? 0) === 0) line.length = Math.min(line.length, this.column);
        else if (argument === 1) for (let column = 0; column <= this.column && column < line.length; column++) line[column] = " ";
        else line.length = 0;
        break;
      }
      case "J":
        if ((argument ?? 0) === 0) {
          const line = this.line(this.row);
          line.length = Math.min(line.length, this.column);
          this.rows.length = this.row + 1;
        }
        break;
    }
  }

  private moveTo(row: number, column: number): void {
    this.row = row;
    this.column = column;
    this.line(row);
  }

  private line(row: number): string[] {
    while (this.rows.length <= row) this.rows.push([]);
    return this.rows[row]!;
  }
}
