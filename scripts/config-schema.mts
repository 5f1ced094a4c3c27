// Writes config.schema.json from the configuration's schema (npm run schema); test/unit/config-schema.test.ts
// fails when the committed file is not what this writes.
import { writeFileSync } from 'node:fs';
import { configJsonSchemaText } from '../src/config/json-schema.ts';

writeFileSync(new URL('../config.schema.json', import.meta.url), configJsonSchemaText());
