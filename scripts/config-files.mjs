// Regenerates the files made from the configuration schema (shared/config/schema.ts):
// deploy/schema/KIND.schema.json (JSON Schema, for editors) and deploy/config/KIND.yaml (the
// documented defaults). Run after `npm run build`; test/unit/config.test.ts fails when they
// are out of date.
import { mkdirSync, writeFileSync } from 'node:fs';
import { defaultYaml, jsonSchemaText } from '../dist/shared/config/index.js';

mkdirSync('deploy/schema', { recursive: true });
mkdirSync('deploy/config', { recursive: true });
for (const kind of ['agent', 'aggregator']) {
  writeFileSync(`deploy/schema/${kind}.schema.json`, jsonSchemaText(kind));
  writeFileSync(`deploy/config/${kind}.yaml`, defaultYaml(kind, { schemaPath: `../schema/${kind}.schema.json` }));
  console.log(`deploy/schema/${kind}.schema.json, deploy/config/${kind}.yaml`);
}
