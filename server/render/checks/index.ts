/**
 * The structural check of a rendered file, by format: what `forge validate`
 * runs after rendering each profile and system (and what the tests run on
 * every golden case). The format comes from the template's directory
 * (kickstart/, autoyast/, ...) or, for a site template elsewhere, from the
 * content (#cloud-config, <profile, a JSON object).
 */
import { checkAutoyast } from './autoyast.js';
import { checkKickstart, ksVersionFor } from './kickstart.js';
import { checkUserData } from './userdata.js';
import { checkAgama } from './agama.js';

export interface CheckProblem {
  line: number;
  message: string;
}

export type CheckedFormat = 'kickstart' | 'autoyast' | 'user-data' | 'agama' | 'none';

export function formatOf(templateName: string, text: string): CheckedFormat {
  const dir = templateName.split('/')[0] ?? '';
  if (dir === 'kickstart' || templateName.endsWith('.ks')) return 'kickstart';
  if (dir === 'autoyast') return 'autoyast';
  if (dir === 'subiquity' || dir === 'cloud-init' || text.startsWith('#cloud-config')) return 'user-data';
  if (dir === 'agama') return 'agama';
  if (/^\s*(<\?xml[^>]*>\s*)?(<!DOCTYPE profile>\s*)?(<!--[\s\S]*?-->\s*)*<profile\b/.test(text)) return 'autoyast';
  return 'none';
}

export type Checker = (text: string, vars: Record<string, unknown>) => CheckProblem[];

const CHECKERS: Partial<Record<CheckedFormat, Checker>> = {
  kickstart: (text, vars) => checkKickstart(text, ksVersionFor(typeof vars['os_version'] === 'string' ? vars['os_version'] : '')),
  autoyast: (text) => checkAutoyast(text),
  'user-data': (text) => checkUserData(text),
  agama: (text) => checkAgama(text),
};

export function checkRendered(templateName: string, text: string, vars: Record<string, unknown>): { format: CheckedFormat; problems: CheckProblem[] } {
  const format = formatOf(templateName, text);
  const fn = CHECKERS[format];
  return { format, problems: fn === undefined ? [] : fn(text, vars) };
}
