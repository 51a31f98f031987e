/**
 * The kernel command line per breed, computed in one place (owned by the
 * autoinstall rendering work). Pure. (Placeholder: joins kernel_options.)
 */
import type { OptionDict } from './model.js';

export interface CmdlineInput {
  /** Blended variables of a system or profile (see core/blend.ts). */
  vars: Record<string, unknown>;
  /** Absolute URL of the autoinstall file for this system/profile. */
  autoinstallUrl: string;
}

export function optionsToString(opts: OptionDict): string {
  return Object.entries(opts)
    .filter(([k]) => !k.startsWith('!'))
    .map(([k, v]) => (v === null ? k : `${k}=${v}`))
    .join(' ');
}

export function kernelCommandLine(input: CmdlineInput): string {
  const ko = input.vars['kernel_options'];
  return typeof ko === 'object' && ko !== null ? optionsToString(ko as OptionDict) : '';
}
