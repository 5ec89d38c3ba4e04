/** "5s", "500ms", "1m", "2h", or a bare number of seconds → milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new Error(`${what}: '${text}' is not a duration (examples: 500ms, 5s, 1m)`);
  const n = Number(m[1]);
  const ms = n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] as number);
  if (!(ms > 0) || !Number.isFinite(ms)) throw new Error(`${what}: '${text}' must be greater than zero`);
  if (!Number.isInteger(ms)) throw new Error(`${what}: '${text}' must be a whole number of milliseconds`);
  return ms;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
