// config.schema.json, generated from the configuration's schema (src/config/schema.ts) so that editors complete
// and check the file. Only `npm run schema` and the tests load this module (and its devDependency).

import { toJsonSchema } from '@valibot/to-json-schema';
import { configFileSchema, jsonSchemaOf } from './schema.ts';

export function configJsonSchema(): Record<string, unknown> {
  const schema = toJsonSchema(configFileSchema, {
    target: 'draft-07',
    // Maps are described by their last schema (the object after the checks); leaves written as functions by leaf().
    typeMode: 'output',
    overrideSchema: ({ valibotSchema }) => jsonSchemaOf.get(valibotSchema) as ReturnType<typeof toJsonSchema> | undefined,
    // Checks written as functions (label syntax, ranges, the tokenRotation < tokenTtl rule) stay the reader's job.
    ignoreActions: ['check', 'raw_check', 'transform', 'raw_transform', 'min_value', 'max_value', 'safe_integer'],
    errorMode: 'throw',
  });
  return { ...schema, title: 'dss-spark-k8s configuration (/etc/dss-spark-k8s/config.yaml)' };
}

/** The file as committed: two-space JSON and a final newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
