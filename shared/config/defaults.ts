/**
 * The documented default files (`distappguard config defaults agent|aggregator`, and what
 * `install` writes to /etc/distappguard) and the JSON Schema for editors, both made from
 * the schema so they cannot drift from it: every key with its description as a comment,
 * its default value, and the keys without a default as commented-out examples.
 */
import { stringify } from 'yaml';
import * as z from 'zod';
import { SCHEMAS, type Kind } from './schema.js';

interface Def {
  type: string;
  innerType?: z.core.$ZodType;
  shape?: Record<string, z.core.$ZodType>;
}

function unwrap(s: z.core.$ZodType): z.core.$ZodType {
  for (;;) {
    const d = s._zod.def as Def;
    if ((d.type === 'optional' || d.type === 'default' || d.type === 'prefault') && d.innerType) s = d.innerType;
    else return s;
  }
}

function metaOf(s: z.core.$ZodType): { description?: string; examples?: unknown[] } {
  return (z.globalRegistry.get(s) as { description?: string; examples?: unknown[] } | undefined) ?? {};
}

function comment(text: string, indent: string): string[] {
  return text.split('\n').map((l) => `${indent}# ${l}`.trimEnd());
}

/** `key: value` as YAML at this indent (lists and mappings in block style) */
function yamlOf(key: string, value: unknown, indent: string): string[] {
  const text = stringify({ [key]: value }, { lineWidth: 0 }).trimEnd();
  return text.split('\n').map((l) => indent + l);
}

function render(shape: Record<string, z.core.$ZodType>, values: Record<string, unknown>, indent: string): string[] {
  const out: string[] = [];
  for (const [key, field] of Object.entries(shape)) {
    const meta = metaOf(field);
    const inner = unwrap(field);
    const value = values[key];
    if (out.length > 0 && indent === '') out.push('');
    if (meta.description) out.push(...comment(meta.description, indent));
    const innerShape = (inner._zod.def as Def).type === 'object' ? (inner._zod.def as Def).shape : undefined;
    if (value !== undefined && innerShape && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      out.push(`${indent}${key}:`);
      out.push(...render(innerShape, value as Record<string, unknown>, indent + '  '));
      continue;
    }
    if (value === undefined || (Array.isArray(value) && value.length === 0)) {
      const examples = meta.examples ?? [];
      if (examples.length > 0) {
        if (examples.length > 1) out.push(`${indent}# for example, one of:`);
        for (const ex of examples) out.push(...yamlOf(key, ex, indent).map((l) => `${indent}# ${l.slice(indent.length)}`));
      }
      if (value === undefined) {
        if (examples.length === 0) out.push(`${indent}# ${key}:`);
        continue;
      }
    }
    out.push(...yamlOf(key, value, indent));
  }
  return out;
}

/** the built-in defaults in the file's form (durations as "5s") */
export function defaultValues(kind: Kind): Record<string, unknown> {
  const schema = SCHEMAS[kind] as z.ZodType;
  return z.encode(schema, schema.parse({}) as never) as Record<string, unknown>;
}

/** the documented default file */
export function defaultYaml(kind: Kind, opts: { schemaPath?: string } = {}): string {
  const schema = SCHEMAS[kind];
  const head = [
    `# DistAppGuard ${kind} configuration (${kind}.yaml), with the built-in defaults.`,
    '# Check it with: distappguard config check /etc/distappguard/' + kind + '.yaml',
    '# Each key can be overridden by its command-line flag or DISTAPPGUARD_<FLAG> variable (flags win).',
    '# Durations: 500ms, 5s, 1m, 2h. Unknown keys are refused.',
  ];
  if (opts.schemaPath) head.unshift(`# yaml-language-server: $schema=${opts.schemaPath}`);
  return [...head, '', ...render(schema.shape as Record<string, z.core.$ZodType>, defaultValues(kind), '')].join('\n') + '\n';
}

/** JSON Schema (draft 2020-12) of the file as a person writes it */
export function jsonSchema(kind: Kind): Record<string, unknown> {
  return z.toJSONSchema(SCHEMAS[kind], { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
}

export function jsonSchemaText(kind: Kind): string {
  return JSON.stringify(jsonSchema(kind), null, 2) + '\n';
}
