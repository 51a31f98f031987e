/**
 * A small JSON Schema (draft 7 subset) validator for forge's own encodings
 * of installer schemas (subiquity autoinstall, Agama profiles): type,
 * properties, required, additionalProperties, patternProperties, items,
 * enum, const, minimum, maximum, minItems, minLength, pattern, oneOf, anyOf,
 * allOf, not. The tests run python3-jsonschema on the same schemas and
 * documents, so this subset cannot drift from the real semantics unnoticed.
 */
export type Schema = { [k: string]: unknown };

export interface SchemaProblem {
  path: string;
  message: string;
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeMatches(v: unknown, t: string): boolean {
  const a = typeOf(v);
  return a === t || (t === 'number' && a === 'integer');
}

export function validateSchema(value: unknown, schema: Schema, path = '$'): SchemaProblem[] {
  const out: SchemaProblem[] = [];
  const fail = (message: string): void => {
    out.push({ path, message });
  };
  const t = schema['type'];
  if (typeof t === 'string' && !typeMatches(value, t)) {
    fail(`is ${typeOf(value)}, must be ${t}`);
    return out;
  }
  if (Array.isArray(t) && !t.some((x) => typeof x === 'string' && typeMatches(value, x))) {
    fail(`is ${typeOf(value)}, must be one of ${t.join(', ')}`);
    return out;
  }
  if (Array.isArray(schema['enum']) && !schema['enum'].some((e) => JSON.stringify(e) === JSON.stringify(value))) fail(`must be one of ${JSON.stringify(schema['enum'])}`);
  if ('const' in schema && JSON.stringify(schema['const']) !== JSON.stringify(value)) fail(`must be ${JSON.stringify(schema['const'])}`);
  if (typeof value === 'number') {
    if (typeof schema['minimum'] === 'number' && value < schema['minimum']) fail(`must be >= ${schema['minimum']}`);
    if (typeof schema['maximum'] === 'number' && value > schema['maximum']) fail(`must be <= ${schema['maximum']}`);
  }
  if (typeof value === 'string') {
    if (typeof schema['minLength'] === 'number' && value.length < schema['minLength']) fail(`must be at least ${schema['minLength']} characters`);
    if (typeof schema['pattern'] === 'string' && !new RegExp(schema['pattern'], 'u').test(value)) fail(`must match ${schema['pattern']}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema['minItems'] === 'number' && value.length < schema['minItems']) fail(`must have at least ${schema['minItems']} items`);
    const items = schema['items'];
    if (typeof items === 'object' && items !== null && !Array.isArray(items)) value.forEach((v, i) => out.push(...validateSchema(v, items as Schema, `${path}[${i}]`)));
  }
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (schema['properties'] ?? {}) as Record<string, Schema>;
    const patterns = (schema['patternProperties'] ?? {}) as Record<string, Schema>;
    for (const r of (schema['required'] ?? []) as string[]) if (!(r in obj)) fail(`missing required "${r}"`);
    for (const [k, v] of Object.entries(obj)) {
      let matched = false;
      if (props[k] !== undefined) {
        matched = true;
        out.push(...validateSchema(v, props[k], `${path}.${k}`));
      }
      for (const [re, ps] of Object.entries(patterns)) {
        if (new RegExp(re, 'u').test(k)) {
          matched = true;
          out.push(...validateSchema(v, ps, `${path}.${k}`));
        }
      }
      if (!matched) {
        const ap = schema['additionalProperties'];
        if (ap === false) out.push({ path: `${path}.${k}`, message: 'is not allowed here' });
        else if (typeof ap === 'object' && ap !== null) out.push(...validateSchema(v, ap as Schema, `${path}.${k}`));
      }
    }
  }
  const subs = (k: string): Schema[] => (Array.isArray(schema[k]) ? (schema[k] as Schema[]) : []);
  for (const s of subs('allOf')) out.push(...validateSchema(value, s, path));
  if (subs('anyOf').length > 0 && !subs('anyOf').some((s) => validateSchema(value, s, path).length === 0)) fail('matches none of the allowed shapes (anyOf)');
  if (subs('oneOf').length > 0) {
    const n = subs('oneOf').filter((s) => validateSchema(value, s, path).length === 0).length;
    if (n !== 1) fail(n === 0 ? 'matches none of the allowed shapes (oneOf)' : 'matches more than one shape (oneOf)');
  }
  if (typeof schema['not'] === 'object' && schema['not'] !== null && validateSchema(value, schema['not'] as Schema, path).length === 0) fail('matches a forbidden shape (not)');
  return out;
}
