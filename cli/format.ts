/** How a window is shown: one JSON object per line for programs, a table for people. */
import type { MergedWindow, PartialWindow } from '../shared/graph.js';
import { formatDuration } from '../shared/duration.js';

export function windowJson(w: PartialWindow): string {
  return JSON.stringify(w);
}

const nf = new Intl.NumberFormat('en-US');

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}
function padLeft(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

export function windowTable(w: PartialWindow): string {
  const when = new Date(w.windowStart).toISOString();
  const head = `── ${when} +${formatDuration(w.windowMs)}  host ${w.host}  app ${w.app}  ${w.edges.length} edges, ${w.flows.length} flows, ${nf.format(w.stats.events)} events`;
  const lines = [head];
  if (w.edges.length === 0) lines.push('   (no data moved)');
  else {
    const sw = Math.min(48, Math.max(3, ...w.edges.map((e) => e.src.length)));
    const dw = Math.min(48, Math.max(3, ...w.edges.map((e) => e.dst.length)));
    lines.push(`   ${pad('SOURCE', sw)}  →  ${pad('DESTINATION', dw)}  KIND  ${padLeft('BYTES', 13)}  ${padLeft('CALLS', 8)}`);
    for (const e of w.edges) {
      lines.push(`   ${pad(e.src, sw)}  →  ${pad(e.dst, dw)}  ${pad(e.kind, 4)}  ${padLeft(nf.format(e.bytes), 13)}  ${padLeft(nf.format(e.count), 8)}`);
    }
  }
  const s = w.stats;
  if (s.unknownFdCalls > 0 || s.lateEvents > 0) {
    lines.push(`   skipped: ${nf.format(s.unknownFdCalls)} calls (${nf.format(s.unknownFdBytes)} bytes) on fds of unknown origin; ${s.lateEvents} late events`);
  }
  return lines.join('\n') + '\n';
}

/** The application-wide graph of a window, as the aggregator merged it. */
export function mergedTable(w: MergedWindow): string {
  const when = new Date(w.windowStart).toISOString();
  const lines = [`══ ${when} +${formatDuration(w.windowMs)}  app ${w.app}  hosts ${w.hosts.join(', ')}  ${w.edges.length} edges, ${w.matchedFlows} flow ends joined, ${w.unmatchedFlows} external`];
  const sw = Math.min(48, Math.max(3, ...w.edges.map((e) => e.src.length)));
  const dw = Math.min(48, Math.max(3, ...w.edges.map((e) => e.dst.length)));
  for (const e of w.edges) {
    lines.push(`   ${pad(e.src, sw)}  →  ${pad(e.dst, dw)}  ${pad(e.kind, 4)}  ${padLeft(nf.format(e.bytes), 13)}  ${padLeft(nf.format(e.count), 8)}`);
  }
  return lines.join('\n') + '\n';
}
