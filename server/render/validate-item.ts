/**
 * One object of a `forge validate` run once it is prepared (loaded and blended on the
 * server's thread): build the template context, render, run the installer's own rules
 * (render/checks/), and say what is wrong, if anything. The same function runs in the
 * server's thread (validate_workers 0) and in the render workers (render/validate-pool.ts),
 * so both give the same answer for the same input. Pure but for the renderer's file reads.
 */
import type { Vars } from '../core/blend.js';
import { ForgeError } from '../errors.js';
import { checkRendered } from './checks/index.js';
import type { Renderer, RenderMemo, RenderTarget } from './renderer.js';
import { templateContext } from './vars.js';

export type TargetKind = 'system' | 'profile';

/** What validate reports for one object that fails. */
export interface ValidateProblem {
  kind: TargetKind;
  name: string;
  code: string;
  message: string;
  details?: unknown;
}

/**
 * A prepared object, as plain data (a worker gets it through structured clone): `vars` are
 * the blended variables before templateContext (whose network values are computed lazily
 * where the template reads them, so in the worker, not here).
 */
export interface ValidateItem {
  /** Position in the run: problems are reported in this order whichever thread rendered them. */
  seq: number;
  kind: TargetKind;
  name: string;
  templateName: string;
  vars: Vars;
  target: RenderTarget;
}

/** A failure (thrown by prepare, render or a check) as validate lists it. */
export function problemOf(kind: TargetKind, name: string, e: unknown): ValidateProblem {
  const fe = e instanceof ForgeError ? e : new ForgeError('INTERNAL', e instanceof Error ? e.message : String(e));
  const item: ValidateProblem = { kind, name, code: fe.code, message: fe.message };
  if (fe.details !== undefined) item.details = fe.details;
  return item;
}

/** Render and check one prepared object; undefined when it renders and passes. */
export function renderAndCheck(renderer: Renderer, memo: RenderMemo, it: ValidateItem): ValidateProblem | undefined {
  try {
    const vars = templateContext(it.vars);
    const r = renderer.render(it.templateName, vars, it.target, memo);
    // The installer's own rules, so a user learns before an install, not after.
    const c = checkRendered(it.templateName, r.text, vars);
    if (c.problems.length === 0) return undefined;
    return {
      kind: it.kind, name: it.name, code: 'AUTOINSTALL_INVALID',
      message: `${r.template.file} (${c.format}): ${c.problems.map((x) => `line ${x.line}: ${x.message}`).join('; ')}`,
      details: { format: c.format, problems: c.problems },
    };
  } catch (e) {
    return problemOf(it.kind, it.name, e);
  }
}
