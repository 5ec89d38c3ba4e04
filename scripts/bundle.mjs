#!/usr/bin/env node
/**
 * The air-gapped bundle: one archive with the built program, the production dependencies as
 * they are installed here (the compiled better-sqlite3, the TensorFlow.js wasm files, Graphviz
 * in wasm), the Node runtime itself, a launcher, an install script and checksums. The unpacked
 * bundle never needs the network: nothing is downloaded or compiled, here or on the target.
 *
 *   node scripts/bundle.mjs [--skip-build] [--no-node] [--out DIR] [--keep-staging]
 *
 * → DIR/distappguard-<version>-linux-<arch>-node<major>.tar.gz and .tar.gz.sha256 (DIR: dist-bundle/)
 *
 * Reproducible as far as tar and gzip allow: files in name order, one mtime for every entry
 * (SOURCE_DATE_EPOCH, else the last commit's time), owner 0:0, normalised modes, gzip -n.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function usage(code) {
  (code ? process.stderr : process.stdout).write(
    'usage: node scripts/bundle.mjs [--skip-build] [--no-node] [--out DIR] [--keep-staging]\n' +
      '  --skip-build    use dist/ as it is (default: npm run build first)\n' +
      '  --no-node       leave the Node runtime out (the target then needs node ' + process.versions.node.split('.')[0] + '.x on PATH)\n' +
      '  --out DIR       where the archive goes (default: dist-bundle/)\n' +
      '  --keep-staging  keep the unpacked tree next to the archive\n',
  );
  process.exit(code);
}

function parseArgs(argv) {
  const o = { build: true, node: true, out: path.join(ROOT, 'dist-bundle'), keepStaging: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--skip-build') o.build = false;
    else if (a === '--no-node') o.node = false;
    else if (a === '--keep-staging') o.keepStaging = true;
    else if (a === '--out' && argv[i + 1]) o.out = path.resolve(argv[++i]);
    else if (a === '-h' || a === '--help') usage(0);
    else {
      process.stderr.write(`bundle: unknown argument '${a}'\n`);
      usage(2);
    }
  }
  return o;
}

function fail(msg) {
  process.stderr.write(`bundle: ${msg}\n`);
  process.exit(1);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// What goes in, what is junk

/** Package-root folders that are never loaded at run time. */
const JUNK_DIRS = new Set(['test', 'tests', '__tests__', 'example', 'examples', 'benchmark', 'benchmarks', 'bench', '.github', 'coverage']);
const LICENSE = /^(licen[cs]e|copying|notice|authors)/i;

/** Files never loaded at run time: source maps, TypeScript sources and declarations, markdown. */
function junkFile(name) {
  if (name.endsWith('.map')) return true;
  if (/\.(d\.)?[cm]?ts$/.test(name) || name.endsWith('.tsbuildinfo')) return !LICENSE.test(name);
  if (/\.(md|markdown)$/i.test(name)) return !LICENSE.test(name);
  return false;
}

/**
 * Per-package trimming where the general rules are not enough. Node resolves @tensorflow/* by
 * "main" (dist/*.node.js, CommonJS bundles), so the browser builds (UMD, es2017, fesm, minified,
 * the WeChat miniprogram copies) are never read; the ESM tree under dist/ is kept.
 * better-sqlite3 needs lib/ and its compiled addon, not the SQLite sources and build objects.
 */
function packageJunk(pkgRel, rel) {
  if (pkgRel.startsWith('node_modules/@tensorflow/')) {
    if (rel === 'dist/miniprogram') return true;
    if (/^dist\/[^/]+\.(js|html)$/.test(rel) && !rel.endsWith('.node.js') && /^dist\/(tf|tf-[a-z-]+)\./.test(rel)) return true;
  }
  if (pkgRel === 'node_modules/better-sqlite3') {
    if (rel === 'deps' || rel === 'src' || rel === 'binding.gyp') return true;
    if (rel.startsWith('build/') && rel !== 'build/Release' && rel !== 'build/Release/better_sqlite3.node') return true;
  }
  return false;
}

/** The production packages' folders (relative to the project), from the lock file. */
function productionPackages() {
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
  if (!lock.packages) fail('package-lock.json has no "packages" (lockfileVersion ≥ 2 needed)');
  const prod = new Set();
  for (const [rel, meta] of Object.entries(lock.packages)) {
    if (!rel.startsWith('node_modules/') || meta.dev) continue;
    if (existsSync(path.join(ROOT, rel))) prod.add(rel);
    else if (!meta.optional) fail(`${rel} is a production dependency in package-lock.json but is not installed (run npm ci)`);
  }
  return prod;
}

/** Copy node_modules without the devDependencies and without junk. */
function copyNodeModules(dest) {
  const prod = productionPackages();
  const stats = { files: 0, skippedBytes: 0 };
  const owner = (rel) => {
    // the innermost package folder holding rel: node_modules/a, node_modules/@s/b, …/node_modules/c
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)(?:\/(.*))?$/.exec(rel);
    return m ? { pkg: m[1], inner: m[2] ?? '' } : undefined;
  };
  const walk = (rel) => {
    for (const ent of readdirSync(path.join(ROOT, rel), { withFileTypes: true })) {
      const childRel = `${rel}/${ent.name}`;
      const src = path.join(ROOT, childRel);
      if (ent.name === '.bin' || ent.name === '.package-lock.json' || ent.name === '.cache') continue;
      // symlinks are followed (npm link, workspaces): the bundle holds plain files and folders only
      const isDir = ent.isDirectory() || (ent.isSymbolicLink() && statSync(src).isDirectory());
      if (isDir) {
        if (ent.name.startsWith('@') && rel.endsWith('node_modules')) {
          walk(childRel);
          continue;
        }
        const own = owner(childRel);
        // a package folder: only production ones
        if (own && own.inner === '') {
          if (!prod.has(childRel)) continue;
        } else if (own) {
          if (JUNK_DIRS.has(ent.name) && !own.inner.includes('/')) continue;
          if (packageJunk(own.pkg, own.inner)) continue;
        }
        mkdirSync(path.join(dest, childRel), { recursive: true });
        walk(childRel);
      } else if (ent.isFile() || ent.isSymbolicLink()) {
        const own = owner(childRel);
        if (own && (junkFile(ent.name) || packageJunk(own.pkg, own.inner))) {
          stats.skippedBytes += lstatSync(src).size;
          continue;
        }
        const st = statSync(src);
        copyFileSync(src, path.join(dest, childRel));
        chmodSync(path.join(dest, childRel), st.mode & 0o111 ? 0o755 : 0o644);
        stats.files++;
      }
    }
  };
  mkdirSync(path.join(dest, 'node_modules'), { recursive: true });
  walk('node_modules');
  return stats;
}

function copyTree(relSrc, dest, { skip = () => false } = {}) {
  const src = path.join(ROOT, relSrc);
  if (!existsSync(src)) return false;
  cpSync(src, path.join(dest, relSrc), {
    recursive: true,
    dereference: true,
    filter: (p) => !skip(path.basename(p), p),
  });
  return true;
}

// ---------------------------------------------------------------------------------------------
// Launcher, installer, checksums

function launcher(nodeMajor) {
  return `#!/bin/sh
# DistAppGuard launcher: runs dist/cli/main.js with the Node runtime shipped in this bundle
# (bin/node), or, in a bundle made with --no-node, with node ${nodeMajor}.x from PATH (the
# compiled better-sqlite3 only loads in that major version).
set -e
self=$(readlink -f "$0")
root=$(dirname "$(dirname "$self")")
node="$root/bin/node"
if [ ! -x "$node" ]; then
  node=$(command -v node || true)
  if [ -z "$node" ]; then
    echo "distappguard: this bundle has no bin/node and there is no node on PATH (need node ${nodeMajor}.x)" >&2
    exit 127
  fi
  major=$("$node" -p 'process.versions.node.split(".")[0]')
  if [ "$major" != "${nodeMajor}" ]; then
    echo "distappguard: $node is Node $major; this bundle's native modules are built for Node ${nodeMajor}" >&2
    exit 127
  fi
fi
exec "$node" "$root/dist/cli/main.js" "$@"
`;
}

function installScript(name) {
  return `#!/bin/sh
# Installs this DistAppGuard bundle: checks every file against SHA256SUMS, copies the tree to
# PREFIX/releases/${name}, then points PREFIX/current at it (one atomic rename), so a new
# version is unpacked beside the old one and a rollback is switching the link back.
#
#   ./install.sh [--prefix DIR] [--role agent|aggregator] [--root DIR] [--bin-dir DIR | --no-bin-link] [--force]
#
#   --prefix DIR    where releases go (default /opt/distappguard)
#   --role ROLE     then lay out the systemd unit and config for this role with
#                   'distappguard install ROLE' (when the installed version has that command)
#   --root DIR      install under DIR as if it were / (an image being built): the release goes
#                   to DIR/PREFIX, the unit and config (--role) under DIR/etc
#   --bin-dir DIR   link DIR/distappguard to the installed launcher (default: /usr/local/bin when
#                   run as root with the default prefix, else no link)
#   --force         replace an installed release of this very name whose files differ
set -eu

PREFIX=/opt/distappguard
ROLE=
ROOT=
BIN_DIR=auto
FORCE=0
die() { echo "install.sh: $*" >&2; exit 1; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX=$2; shift 2 ;;
    --prefix=*) PREFIX=\${1#*=}; shift ;;
    --role) [ $# -ge 2 ] || die "--role needs agent or aggregator"; ROLE=$2; shift 2 ;;
    --role=*) ROLE=\${1#*=}; shift ;;
    --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT=$2; shift 2 ;;
    --root=*) ROOT=\${1#*=}; shift ;;
    --bin-dir) [ $# -ge 2 ] || die "--bin-dir needs a directory"; BIN_DIR=$2; shift 2 ;;
    --bin-dir=*) BIN_DIR=\${1#*=}; shift ;;
    --no-bin-link) BIN_DIR=; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$ROLE" in ''|agent|aggregator) ;; *) die "--role '$ROLE': expected agent or aggregator" ;; esac
case "$PREFIX" in /*) ;; *) PREFIX=$(pwd)/$PREFIX ;; esac
case "$ROOT" in ''|/*) ;; *) ROOT=$(pwd)/$ROOT ;; esac
ROOT=\${ROOT%/}
[ "$BIN_DIR" = auto ] && { if [ "$PREFIX" = /opt/distappguard ] && [ "$(id -u)" -eq 0 ]; then BIN_DIR=/usr/local/bin; else BIN_DIR=; fi; }
# PREFIX is where the program is on the target system; DEST is where the files go now
DEST=$ROOT$PREFIX

NAME=${name}
HERE=$(cd "$(dirname "$0")" && pwd)

# Every file must be listed in SHA256SUMS with its checksum, and nothing else may be there.
verify() {
  dir=$1
  [ -f "$dir/SHA256SUMS" ] || { echo "install.sh: $dir: no SHA256SUMS: not a DistAppGuard bundle" >&2; return 1; }
  if ! out=$(cd "$dir" && LC_ALL=C sha256sum --check --strict --quiet SHA256SUMS 2>&1); then
    echo "$out" | sed 's/^/  /' >&2
    echo "install.sh: $dir: the files above do not match SHA256SUMS: the bundle is damaged or was tampered with; refusing to install" >&2
    return 1
  fi
  listed=$(mktemp)
  cut -c67- "$dir/SHA256SUMS" | LC_ALL=C sort > "$listed"   # "<64 hex digits><2 spaces><name>"
  extra=$(cd "$dir" && find . ! -type d ! -path ./SHA256SUMS | sed 's|^[.]/||' | LC_ALL=C sort | LC_ALL=C comm -23 - "$listed")
  rm -f "$listed"
  if [ -n "$extra" ]; then
    echo "$extra" | sed 's/^/  /' >&2
    echo "install.sh: $dir: the files above are not listed in SHA256SUMS; refusing to install" >&2
    return 1
  fi
}

echo "install.sh: checking $HERE against SHA256SUMS" >&2
verify "$HERE" || exit 1

mkdir -p "$DEST/releases"
dest="$DEST/releases/$NAME"
if [ -e "$dest" ]; then
  if cmp -s "$HERE/SHA256SUMS" "$dest/SHA256SUMS" && verify "$dest" 2>/dev/null; then
    echo "install.sh: $dest is already installed and intact" >&2
  elif [ "$FORCE" -eq 1 ]; then
    rm -rf "$dest"
  else
    die "$dest exists and differs from this bundle: remove it, or use --force"
  fi
fi
if [ ! -e "$dest" ]; then
  tmp="$DEST/releases/.$NAME.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp -R "$HERE/." "$tmp/"
  verify "$tmp" || { rm -rf "$tmp"; die "the copy in $tmp does not match SHA256SUMS (disk full?)"; }
  mv "$tmp" "$dest"
fi

# before switching: the new release must start here, and its compiled SQLite must load (a host
# with an older glibc than MANIFEST's "requires" line fails here, and current stays as it was)
node="$dest/bin/node"
[ -x "$node" ] || node=$(command -v node || true)
if ! version=$("$dest/bin/distappguard" --version 2>&1) \\
  || ! check=$("$node" -e 'const D = require(process.argv[1]); new D(":memory:").prepare("select 1").get()' "$dest/node_modules/better-sqlite3" 2>&1); then
  echo "\${check:-$version}" | sed 's/^/  /' >&2
  die "the new release does not run on this host ($(grep '^requires:' "$dest/MANIFEST" || true)); $DEST/current is unchanged"
fi

# switch: current -> releases/NAME, atomically (rename over the old link)
# (relative links: they hold under --root too)
previous=$(readlink "$DEST/current" 2>/dev/null || true)
ln -sfn "releases/$NAME" "$DEST/.current.new"
mv -T "$DEST/.current.new" "$DEST/current"
mkdir -p "$DEST/bin"
ln -sfn ../current/bin/distappguard "$DEST/bin/.distappguard.new"
mv -T "$DEST/bin/.distappguard.new" "$DEST/bin/distappguard"
if [ -n "$BIN_DIR" ]; then
  mkdir -p "$ROOT$BIN_DIR"
  ln -sfn "$PREFIX/bin/distappguard" "$ROOT$BIN_DIR/distappguard"
fi

echo "install.sh: installed distappguard $version in $dest; $DEST/current -> releases/$NAME\${previous:+ (was $previous)}" >&2

if [ -n "$ROLE" ]; then
  if "$DEST/bin/distappguard" install --help >/dev/null 2>&1; then
    help=$("$DEST/bin/distappguard" install --help 2>&1 || true)
    set -- install "$ROLE"
    case "$help" in *--prefix*) set -- "$@" --prefix "$PREFIX" ;; esac
    [ -n "$ROOT" ] && set -- "$@" --root "$ROOT"
    echo "install.sh: distappguard $*" >&2
    "$DEST/bin/distappguard" "$@"
  else
    echo "install.sh: this version has no 'distappguard install' command; lay out the $ROLE unit by hand (deploy/ in $dest)" >&2
  fi
else
  cat >&2 <<EOF
install.sh: next steps
  $DEST/bin/distappguard --help
  $DEST/bin/distappguard install agent        # or: aggregator (systemd unit, config, user)
  rollback: ln -sfn releases/<older> $DEST/current.new && mv -T $DEST/current.new $DEST/current
EOF
fi
`;
}

function sha256File(file) {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Every regular file under dir, relative, in byte order (what `LC_ALL=C sort` gives). */
function listFiles(dir) {
  const out = [];
  const walk = (rel) => {
    for (const ent of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (/[\n\\]/.test(r)) fail(`${JSON.stringify(r)}: a newline or backslash in a file name (SHA256SUMS would need escapes)`);
      if (ent.isDirectory()) walk(r);
      else if (ent.isFile()) out.push(r);
      else fail(`${r}: not a plain file (the bundle holds files and folders only)`);
    }
  };
  walk('');
  return out.sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : Buffer.from(a) > Buffer.from(b) ? 1 : 0));
}

/**
 * The newest glibc / libstdc++ symbol versions the native binaries (bin/node, the .node addons)
 * ask for: the target host needs at least these. Read from the version strings in the ELF files.
 */
function nativeRequirements(stage, files) {
  const max = { GLIBC: '', GLIBCXX: '' };
  const newer = (a, b) => {
    const x = a.split('.').map(Number);
    const y = b.split('.').map(Number);
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
    return false;
  };
  for (const f of files.filter((f) => f === 'bin/node' || f.endsWith('.node'))) {
    const text = readFileSync(path.join(stage, f)).toString('latin1');
    for (const m of text.matchAll(/\b(GLIBC|GLIBCXX)_(\d+(?:\.\d+)+)\b/g)) if (!max[m[1]] || newer(m[2], max[m[1]])) max[m[1]] = m[2];
  }
  return max;
}

function sourceDateEpoch() {
  if (process.env.SOURCE_DATE_EPOCH && /^\d+$/.test(process.env.SOURCE_DATE_EPOCH)) return Number(process.env.SOURCE_DATE_EPOCH);
  const r = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' });
  const t = Number((r.stdout ?? '').trim());
  return r.status === 0 && t > 0 ? t : 0;
}

function gitCommit() {
  const r = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' });
  return r.stdout.trim() + (dirty.stdout?.trim() ? '-dirty' : '');
}

let phaseStart = Date.now();
/** One line per step on stderr, with how long the previous one took. */
function phase(what) {
  const now = Date.now();
  process.stderr.write(`bundle: ${what} (+${((now - phaseStart) / 1000).toFixed(1)} s)\n`);
  phaseStart = now;
}

function mib(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

// ---------------------------------------------------------------------------------------------

function main() {
  const o = parseArgs(process.argv.slice(2));
  if (process.platform !== 'linux') fail('the bundle is built for Linux only');
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const nodeMajor = process.versions.node.split('.')[0];
  const name = `distappguard-${pkg.version}-linux-${process.arch}-node${nodeMajor}`;
  const started = Date.now();

  if (o.build) {
    phase('npm run build');
    run('npm', ['run', 'build'], { cwd: ROOT });
  }
  if (!existsSync(path.join(ROOT, 'dist/cli/main.js'))) fail('dist/cli/main.js is missing: run npm run build (or drop --skip-build)');
  if (!existsSync(path.join(ROOT, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'))) {
    fail('node_modules/better-sqlite3/build/Release/better_sqlite3.node is missing: run npm ci first');
  }

  const stagingRoot = path.join(o.out, '.staging');
  const stage = path.join(stagingRoot, name);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });

  // the program and what it reads at run time (package.json "files"; projectRoot() finds the
  // root by package.json's name, so a trimmed package.json goes too)
  const runtimePkg = Object.fromEntries(Object.entries(pkg).filter(([k]) => !['scripts', 'devDependencies', 'allowScripts'].includes(k)));
  writeFileSync(path.join(stage, 'package.json'), JSON.stringify(runtimePkg, null, 2) + '\n');
  copyTree('dist', stage, { skip: (n) => n.endsWith('.map') || n.endsWith('.d.ts') });
  for (const rel of ['agent/collectors/bpftrace', 'workload', 'proto', 'deploy']) copyTree(rel, stage, { skip: (n) => n === 'build' || n === '.cache' });
  for (const rel of ['README.md', 'LICENSE']) if (existsSync(path.join(ROOT, rel))) copyFileSync(path.join(ROOT, rel), path.join(stage, rel));
  // the operations guide (install, configuration, certificates, outputs, console) travels with the bundle
  mkdirSync(path.join(stage, 'docs'), { recursive: true });
  copyFileSync(path.join(ROOT, 'docs/operations.md'), path.join(stage, 'docs/operations.md'));

  phase(`staging ${name}: node_modules without devDependencies`);
  const nm = copyNodeModules(stage);
  phase('npm ls --omit=dev: is every production dependency there?');
  // npm's own view of the staged tree: no production dependency missing (nothing is fetched)
  const ls = spawnSync('npm', ['ls', '--omit=dev', '--all', '--offline', '--parseable'], { cwd: stage, encoding: 'utf8' });
  if (ls.status !== 0) fail(`npm ls in the staged tree found a problem:\n${ls.stderr || ls.stdout}`);

  mkdirSync(path.join(stage, 'bin'), { recursive: true });
  if (o.node) {
    copyFileSync(process.execPath, path.join(stage, 'bin/node'));
    chmodSync(path.join(stage, 'bin/node'), 0o755);
  }
  writeFileSync(path.join(stage, 'bin/distappguard'), launcher(nodeMajor), { mode: 0o755 });
  chmodSync(path.join(stage, 'bin/distappguard'), 0o755);
  writeFileSync(path.join(stage, 'install.sh'), installScript(name), { mode: 0o755 });
  chmodSync(path.join(stage, 'install.sh'), 0o755);

  phase('MANIFEST and SHA256SUMS');
  // MANIFEST (what this is), then SHA256SUMS over every file including MANIFEST
  const epoch = sourceDateEpoch();
  let files = listFiles(stage);
  const needs = nativeRequirements(stage, files);
  const bytes = files.reduce((a, f) => a + statSync(path.join(stage, f)).size, 0);
  const manifest = [
    `name: ${name}`,
    `version: ${pkg.version}`,
    `commit: ${gitCommit()}`,
    `source-date: ${new Date(epoch * 1000).toISOString()}`,
    `platform: linux-${process.arch}`,
    `node: ${o.node ? `v${process.versions.node} (bin/node)` : `not included: needs node ${nodeMajor}.x on PATH`}`,
    `node-abi: ${process.versions.modules}`,
    `requires: linux-${process.arch}${needs.GLIBC ? `, glibc >= ${needs.GLIBC}` : ''}${needs.GLIBCXX ? `, libstdc++ with GLIBCXX_${needs.GLIBCXX}` : ''}`,
    `files: ${files.length + 2}`,
    `bytes: ${bytes} (without MANIFEST and SHA256SUMS)`,
    `dependencies:`,
    ...Object.entries(pkg.dependencies ?? {}).map(([n, v]) => `  ${n}: ${v}`),
    '',
  ].join('\n');
  writeFileSync(path.join(stage, 'MANIFEST'), manifest);
  files = listFiles(stage);
  writeFileSync(path.join(stage, 'SHA256SUMS'), files.map((f) => `${sha256File(path.join(stage, f))}  ${f}\n`).join(''));

  phase('tar + gzip');
  mkdirSync(o.out, { recursive: true });
  const archive = path.join(o.out, `${name}.tar.gz`);
  rmSync(archive, { force: true });
  run('tar', [
    '--sort=name', `--mtime=@${epoch}`, '--owner=0', '--group=0', '--numeric-owner', '--mode=u+rwX,go+rX,go-w',
    '--format=gnu', '-I', 'gzip -n', '-C', stagingRoot, '-cf', archive, name,
  ], { env: { ...process.env, LC_ALL: 'C' } });
  const digest = sha256File(archive);
  writeFileSync(`${archive}.sha256`, `${digest}  ${path.basename(archive)}\n`);
  if (!o.keepStaging) rmSync(stagingRoot, { recursive: true, force: true });
  phase('done');

  const size = statSync(archive).size;
  process.stdout.write(
    `${archive}\n` +
      `  ${files.length + 1} files, ${mib(bytes)} unpacked (node_modules: ${nm.files} files, ${mib(nm.skippedBytes)} of maps/docs/sources left out), ` +
      `${mib(size)} archive, sha256 ${digest}, ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
  );
}

main();
