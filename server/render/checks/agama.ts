/**
 * Structural checks of an Agama profile (JSON), shared by `forge validate`
 * and the tests: one JSON object, valid against forge's encoding of Agama's
 * profile schema (schemas/agama.ts).
 */
import { validateSchema } from './jsonschema.js';
import { AGAMA_SCHEMA } from './schemas/agama.js';

export function checkAgama(text: string): { line: number; message: string }[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return [{ line: 1, message: `not JSON: ${e instanceof Error ? e.message : String(e)}` }];
  }
  return validateSchema(value, AGAMA_SCHEMA).map((p) => ({ line: 0, message: `${p.path}: ${p.message}` }));
}
