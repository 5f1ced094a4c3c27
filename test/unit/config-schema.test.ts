// config.schema.json is generated from the schema that reads the file: the committed copy must be what
// `npm run schema` writes, its defaults must be the reader's, and the example configuration must point to it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { configJsonSchema, configJsonSchemaText } from '../../src/config/json-schema.ts';

const root = new URL('../../', import.meta.url);
type JsonSchema = { properties: Record<string, { default?: unknown }>; additionalProperties?: unknown; required?: string[] };
const profileSchema = (configJsonSchema() as { properties: { profiles: { additionalProperties: JsonSchema } } }).properties.profiles.additionalProperties;

describe('config.schema.json', () => {
  it('is what npm run schema writes from src/config/schema.ts (run it after changing a key)', () => {
    expect(readFileSync(new URL('config.schema.json', root), 'utf8')).toBe(configJsonSchemaText());
  });

  it('lists every key the reader knows, refuses others, and requires only sparkSubmit', () => {
    const { message } = (() => {
      try {
        parseConfig('profiles: {default: {sparkSubmit: /s, nope: 1}}', 'f');
      } catch (error) {
        return error as Error;
      }
      throw new Error('expected an error');
    })();
    const known = message.split('known keys: ')[1]!.split(', ');
    expect(Object.keys(profileSchema.properties)).toEqual(known);
    expect(profileSchema.additionalProperties).toBe(false);
    expect(profileSchema.required).toEqual(['sparkSubmit']);
  });

  it('gives, as each default, the value the reader uses when the key is absent', () => {
    const withDefaults = Object.entries(profileSchema.properties).filter(([, property]) => 'default' in property);
    expect(withDefaults.length).toBe(16);
    const implicit = parseConfig('profiles: {default: {sparkSubmit: /s}}', 'f').profiles.default!;
    const explicit = Object.fromEntries([['sparkSubmit', '/s'], ...withDefaults.map(([key, property]) => [key, property.default])]);
    expect(parseConfig(JSON.stringify({ profiles: { default: explicit } }), 'f').profiles.default).toEqual(implicit);
  });

  it('is named by the example configuration, which the reader accepts', () => {
    const example = readFileSync(new URL('packaging/config.yaml', root), 'utf8');
    expect(example.split('\n')[0]).toBe('# yaml-language-server: $schema=../config.schema.json');
    expect(parseConfig(example, 'packaging/config.yaml').profiles.default?.sparkSubmit).toMatch(/^\//);
  });
});
