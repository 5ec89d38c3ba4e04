// CI check that the checked-in generated code (shared/gen) is what `buf generate` makes from
// proto/ now: regenerates into a temp dir and compares file by file. Exit 1 with the list of
// differing files, so a .proto edit without `npm run proto` cannot slip through.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const GEN = 'shared/gen';
const bin = join(root, 'node_modules', '.bin');

function files(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

const tmp = mkdtempSync(join(tmpdir(), 'dag-proto-'));
let code = 0;
try {
  // buf prepends -o to the template's out dirs: output lands in tmp/shared/gen. protoc-gen-es
  // is found on PATH, as under `npm run proto`.
  execFileSync(join(bin, 'buf'), ['generate', '-o', tmp], {
    cwd: root,
    env: { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}` },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const want = join(tmp, GEN);
  const have = join(root, GEN);
  const a = files(want);
  const b = files(have);
  const problems = [];
  for (const f of a) {
    if (!b.includes(f)) problems.push(`missing: ${GEN}/${f}`);
    else if (!readFileSync(join(want, f)).equals(readFileSync(join(have, f)))) problems.push(`differs: ${GEN}/${f}`);
  }
  for (const f of b) if (!a.includes(f)) problems.push(`not generated (stale): ${GEN}/${f}`);
  if (a.length === 0) problems.push('buf generate produced no files');
  if (problems.length > 0) {
    console.error(`${GEN} is out of date with proto/ — run \`npm run proto\` and commit the result:`);
    for (const p of problems) console.error(`  ${p}`);
    code = 1;
  } else {
    console.log(`${GEN} is in sync with proto/ (${a.length} file${a.length === 1 ? '' : 's'})`);
  }
} catch (err) {
  console.error(`proto-check: ${err instanceof Error ? err.message : String(err)}`);
  code = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(code);
