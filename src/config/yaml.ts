// YAML text as the configuration readers take it: the document, or what is wrong with the text in one line.
import { load as loadYaml } from 'js-yaml';

export type YamlRead = { document: unknown } | { problem: string };

/**
 * `invalid YAML at line N: reason` for a syntax error (`lineName` says whose line: "its line" for YAML held in a
 * key); no line for whole-stream problems (several documents). Anything but a YAML error is thrown.
 */
export function readYaml(text: string, lineName = 'line'): YamlRead {
  try {
    return { document: loadYaml(text) };
  } catch (error) {
    const { name, mark, reason, message } = error as { name?: string; mark?: { line?: number }; reason?: string; message?: string };
    if (name !== 'YAMLException') throw error;
    const where = typeof mark?.line === 'number' ? ` at ${lineName} ${mark.line + 1}` : '';
    return { problem: `invalid YAML${where}: ${reason ?? String(message).split('\n')[0]}` };
  }
}
