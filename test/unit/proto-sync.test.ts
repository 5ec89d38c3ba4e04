/**
 * The checked-in generated code matches proto/ (CI runs this instead of trusting that someone
 * ran `npm run proto`), the checker itself notices drift, and buf lint passes.
 */
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../../shared/project-root.js';

const root = projectRoot();
const buf = join(root, 'node_modules', '.bin', 'buf');

function run(cmd: string, args: string[], cwd: string) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

describe('proto', () => {
  it('shared/gen is in sync with proto/ (scripts/proto-check.mjs)', () => {
    const r = run(process.execPath, [join(root, 'scripts', 'proto-check.mjs')], root);
    expect(r.out).toContain('in sync');
    expect(r.code).toBe(0);
  });

  it('proto-check fails and lists the files when shared/gen drifts', () => {
    // a copy of just what the check needs, so the real tree is never touched
    const dir = mkdtempSync(join(tmpdir(), 'dag-proto-sync-'));
    try {
      for (const p of ['buf.yaml', 'buf.gen.yaml', 'proto', 'scripts/proto-check.mjs', 'shared/gen']) cpSync(join(root, p), join(dir, p), { recursive: true });
      symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
      appendFileSync(join(dir, 'shared/gen/distappguard/v1/agent_pb.ts'), '// hand edit\n');
      writeFileSync(join(dir, 'shared/gen/stale_pb.ts'), 'export {};\n');
      const r = run(process.execPath, [join(dir, 'scripts', 'proto-check.mjs')], dir);
      expect(r.code).toBe(1);
      expect(r.out).toContain('differs: shared/gen/distappguard/v1/agent_pb.ts');
      expect(r.out).toContain('not generated (stale): shared/gen/stale_pb.ts');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('buf lint passes', () => {
    const r = run(buf, ['lint'], root);
    expect(r.out).toBe('');
    expect(r.code).toBe(0);
  });
});
