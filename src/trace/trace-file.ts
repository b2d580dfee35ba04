// The file a trace writer appends to: opened for --trace (refused in one line when it cannot
// be), written in blocks of joined strings so a long run neither keeps its trace in memory
// nor makes a system call per event.

import { closeSync, openSync, writeSync } from "node:fs";
import { InputError } from "../errors.js";

const BLOCK = 4096;

export class TraceFile {
  private readonly fd: number;
  private buf: string[] = [];

  constructor(readonly file: string) {
    try {
      this.fd = openSync(file, "w");
    } catch (e) {
      throw new InputError(`--trace: cannot write it (${(e as NodeJS.ErrnoException).code ?? String(e)})`, file);
    }
  }

  put(s: string): void {
    this.buf.push(s);
    if (this.buf.length >= BLOCK) this.flush();
  }

  private flush(): void {
    if (this.buf.length === 0) return;
    writeSync(this.fd, this.buf.join(""));
    this.buf = [];
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}
