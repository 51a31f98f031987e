/**
 * Skip policy for tests that need root, qemu, libvirt or a Debian package.
 * On a developer laptop such a test skips with a clear message; in CI
 * (CI=true) a missing capability is a failure, never a skip.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export const inCI = (): boolean => /^(1|true|yes)$/i.test(process.env['CI'] ?? '');

export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function fileReadable(p: string): boolean {
  try {
    accessSync(p, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns a reason string when the requirements are not met. In CI this
 * throws (failing the test); elsewhere it calls t.skip(reason) and returns the
 * reason so the caller can `return`.
 */
export function need(
  t: TestContext,
  req: { root?: boolean; commands?: string[]; files?: string[] },
): string | undefined {
  const missing: string[] = [];
  if (req.root === true && !isRoot()) missing.push('root');
  for (const c of req.commands ?? []) if (!hasCommand(c)) missing.push(`command ${c}`);
  for (const f of req.files ?? []) if (!existsSync(f)) missing.push(`file ${f}`);
  if (missing.length === 0) return undefined;
  const reason = `needs ${missing.join(', ')} (install with: sudo bash .ci/run, or see README)`;
  if (inCI()) throw new Error(`CI=true and this test cannot run: ${reason}`);
  t.skip(reason);
  return reason;
}
