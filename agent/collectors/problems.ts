import type { CollectorProblem, ProblemSink } from './collector.js';

/**
 * Reports a parser's problems to its sink, at most `max` per kind (the parser's counters stay
 * exact): a trace with a million bad lines must not make a million log lines.
 */
export class ProblemReporter {
  private readonly reported = new Map<string, number>();

  constructor(
    private readonly sink: ProblemSink | undefined,
    private readonly max = 100,
  ) {}

  report(kind: string, message: string, line: number, text: string): void {
    if (this.sink === undefined) return;
    const n = (this.reported.get(kind) ?? 0) + 1;
    this.reported.set(kind, n);
    if (n > this.max + 1) return;
    const p: CollectorProblem =
      n <= this.max
        ? { kind, message, line, text: text.length > 300 ? text.slice(0, 300) + '…' : text }
        : { kind, message: `more than ${this.max} ${kind} problems: further ones are only counted` };
    this.sink(p);
  }
}
