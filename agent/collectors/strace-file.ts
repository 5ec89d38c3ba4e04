/**
 * Replay of a recorded strace log (`strace -f -ttt -y -yy -o FILE`, or the live collector's
 * rawOut copy): the same parser over a read stream, one batch per chunk read.
 *
 * - At full speed by default; `speed` replays in trace time (1 = as recorded, 10 = ten
 *   times faster), so live-style consumers (wall-clock window closing) can be exercised.
 * - Files ending in .gz are gunzipped on the fly.
 * - A missing or unreadable file is a CollectorUnavailable.
 */
import { createReadStream } from 'node:fs';
import { access, constants } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { SyscallEvent } from '../../shared/event.js';
import { type Collector, type CollectorCounters, CollectorUnavailable, type ProblemSink } from './collector.js';
import { StraceLineFeeder, StraceParser, type StraceParserOptions } from './strace-parser.js';

export interface StraceFileOptions extends StraceParserOptions {
  onProblem?: ProblemSink;
  /** replay in trace time divided by this factor; absent or 0: as fast as possible */
  speed?: number;
  /** read size (default 256 KiB) */
  chunkBytes?: number;
}

export class StraceFileCollector implements Collector {
  readonly name = 'strace-file';
  private readonly parser: StraceParser;
  private stopped = false;
  private iterated = false;
  private file: ReturnType<typeof createReadStream> | undefined;

  constructor(
    readonly path: string,
    private readonly opts: StraceFileOptions = {},
  ) {
    this.parser = new StraceParser(opts.onProblem, opts);
  }

  counters(): CollectorCounters {
    return { ...this.parser.counters(), bytesRead: this.file?.bytesRead ?? 0 };
  }

  async *events(): AsyncGenerator<SyscallEvent[]> {
    if (this.iterated) throw new Error('StraceFileCollector.events() can be iterated only once');
    this.iterated = true;
    try {
      await access(this.path, constants.R_OK);
    } catch (e) {
      throw new CollectorUnavailable(this.name, `cannot read strace log ${this.path}: ${(e as Error).message}`);
    }
    const file = createReadStream(this.path, { highWaterMark: this.opts.chunkBytes ?? 256 * 1024 });
    this.file = file;
    let stream: Readable = file;
    if (this.path.endsWith('.gz')) stream = file.pipe(createGunzip());
    stream.setEncoding('latin1'); // strace writes ASCII; latin1 never splits a character
    const feeder = new StraceLineFeeder(this.parser);
    const pace = this.opts.speed && this.opts.speed > 0 ? new Pacer(this.opts.speed) : undefined;
    try {
      for await (const chunk of stream as AsyncIterable<string>) {
        if (this.stopped) break;
        const out: SyscallEvent[] = [];
        feeder.push(chunk, out);
        if (out.length === 0) continue;
        if (pace) yield* pace.release(out, () => this.stopped);
        else yield out;
      }
    } finally {
      file.destroy();
      stream.destroy();
    }
    if (this.stopped) {
      this.parser.finish(); // calls cut by the stop are reported; a half-read line is not a bad one
      return;
    }
    const out: SyscallEvent[] = [];
    feeder.end(out);
    if (out.length > 0) {
      if (pace) yield* pace.release(out, () => this.stopped);
      else yield out;
    }
  }

  /** Stops reading; the current batch is the last one. */
  async stop(): Promise<void> {
    this.stopped = true;
  }
}

/** Holds batches back so that trace time advances no faster than wall time × speed. */
class Pacer {
  private t0 = NaN; // first event's trace time
  private w0 = 0; // wall time then

  constructor(private readonly speed: number) {}

  async *release(events: SyscallEvent[], stopped: () => boolean): AsyncGenerator<SyscallEvent[]> {
    if (Number.isNaN(this.t0)) {
      this.t0 = events[0].ts;
      this.w0 = Date.now();
    }
    // cut the chunk where it is due, so a long chunk is not released all at once
    let from = 0;
    while (from < events.length && !stopped()) {
      const dueWall = this.w0 + (events[from].ts - this.t0) / this.speed;
      // wait in short steps: a quiet stretch of the trace must not delay stop()
      for (let wait = dueWall - Date.now(); wait > 1 && !stopped(); wait = dueWall - Date.now()) {
        await new Promise((r) => setTimeout(r, Math.min(wait, 200)));
      }
      if (stopped()) return;
      const now = Date.now();
      let to = from + 1;
      while (to < events.length && this.w0 + (events[to].ts - this.t0) / this.speed <= now) to++;
      yield events.slice(from, to);
      from = to;
    }
  }
}
