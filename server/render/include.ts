/**
 * `{% include %}` without copying every variable.
 *
 * nunjucks 3.2 renders an include by calling the included Template's
 * render(context.getVariables(), frame, cb), and Template#render builds a
 * new Context whose constructor copies the whole variable object
 * (lib.extend: a for-in with hasOwnProperty per key). A blended system has
 * about 80 variables and the shipped templates include ten to twenty
 * snippets, nested, so `forge validate` spent 55 % of its CPU in that copy
 * (--cpu-prof of 20,000 systems; 0.40 -> 0.21 ms of CPU per system with this
 * file and the snippet memo in renderer.ts).
 *
 * Here an included template that cannot write its context (no top-level
 * set, macro, import or extends in its compiled code: writes()) gets the
 * includer's object itself, and one that can gets Object.create(the
 * includer's). The top-level render does the same with the caller's object.
 * It renders the same text, because
 * - reads see the includer's values as they are when the include runs,
 *   which is what the copy held: rendering is synchronous
 *   (Renderer.render), so the includer cannot change them while the
 *   include renders, and the child object is dropped when it returns;
 * - writes (Context#setVariable) land on the child's own object, so they
 *   stay out of the includer, as with the copy;
 * - lookups are `name in ctx` / `ctx[name]` (Context#lookup), which see
 *   inherited properties.
 * Anything that copies the variables again must see the inherited ones too:
 * nunjucks' lib.extend copies own properties only, so getExported (an
 * `{% import ... with context %}` inside an include) is handed a flat copy,
 * taken the way the stock include would have taken it.
 * test/unit/render-include.test.ts renders every golden case, the bench's
 * systems and the edge cases (sets shadowing, sets after an include,
 * includes in loops, imports with context, nesting) both ways and requires
 * equal bytes.
 */
import nunjucks from 'nunjucks';

type Callback = (err: unknown, res?: string) => void;
type Vars = Record<string, unknown>;

/** The parts of nunjucks' internals used here (nunjucks/src/environment.js, 3.2). */
interface NjContext {
  ctx: Vars;
}
type ContextClass = new (ctx: Vars, blocks: unknown, env: nunjucks.Environment) => NjContext;
interface NjFrame {
  topLevel: boolean;
  push(isolateWrites?: boolean): NjFrame;
}
interface NjTemplate {
  env: nunjucks.Environment & { opts: { dev?: boolean } };
  path: string;
  blocks: unknown;
  compile(): void;
  rootRenderFunc(env: nunjucks.Environment, context: NjContext, frame: NjFrame, runtime: unknown, cb: Callback): void;
}
interface NjLib {
  _prettifyError(path: string, withInternals: boolean | undefined, err: unknown): unknown;
}
const njLib = (nunjucks as unknown as { lib: NjLib }).lib;
const njRuntime = (nunjucks as unknown as { runtime: { Frame: new () => NjFrame } }).runtime;

/** nunjucks does not export Context: a global function is called with the context as `this` (runtime.callWrap). */
const Context: ContextClass = (() => {
  let found: unknown;
  const env = new nunjucks.Environment();
  env.addGlobal('grab', function (this: unknown) {
    found = this;
    return '';
  });
  env.renderString('{{ grab() }}', {});
  const ctor = (Object.getPrototypeOf(found) as { constructor: unknown } | null)?.constructor;
  if (typeof ctor !== 'function' || typeof (found as NjContext).ctx !== 'object') {
    throw new Error('nunjucks internals changed: no Context found (render/include.ts)');
  }
  return ctor as ContextClass;
})();

/** Every enumerable variable, inherited ones included (own shadow inherited: for-in yields each name once). */
function flat(vars: Vars): Vars {
  const out: Vars = {};
  for (const k in vars) out[k] = vars[k];
  return out;
}

/** A compiled template whose includes share the includer's variables (see the file comment). */
export class SharedContextTemplate extends nunjucks.Template {
  override render(ctx?: object, parentFrame?: unknown, cb?: unknown): string {
    // Only the include call (ctx, frame, cb) from compiled template code takes this path.
    if (typeof cb !== 'function' || parentFrame === null || typeof parentFrame !== 'object' || typeof ctx !== 'object' || ctx === null) {
      return (super.render as (...a: unknown[]) => string)(ctx, parentFrame, cb);
    }
    const done = cb as Callback;
    this.run(ctx as Vars, (parentFrame as NjFrame).push(true), done);
    return '';
  }

  /**
   * The top-level render of `vars`, synchronous, without nunjucks' copy
   * either: the caller's object is never written (writes land on a child).
   */
  renderVars(vars: Vars): string {
    let text = '';
    // As Template#render without a callback: the error is thrown from inside the callback,
    // through the compiled code's own catch (which prettifies it once more), so error
    // messages are nunjucks' to the byte (test/unit/render-include.test.ts).
    this.run(vars, new njRuntime.Frame(), (err, res) => {
      if (err !== null && err !== undefined) throw err;
      text = res ?? '';
    });
    return text;
  }

  /** Template#render's body (nunjucks 3.2) with Object.create(vars) for the context's copy. */
  private run(vars: Vars, frame: NjFrame, done: Callback): void {
    const self = this as unknown as NjTemplate;
    // Compile errors go to the callback, prettified.
    try {
      self.compile();
    } catch (e) {
      done(njLib._prettifyError(self.path, self.env.opts.dev, e));
      return;
    }
    const context = new Context({}, self.blocks, self.env);
    context.ctx = this.writes(self) ? (Object.create(vars) as Vars) : vars;
    frame.topLevel = true;
    // Errors prettified with this file's path; no callback with a result after an error.
    let didError = false;
    self.rootRenderFunc(self.env, context, frame, njRuntime, (err, res) => {
      if (didError && res !== undefined) return;
      if (err !== null && err !== undefined) {
        didError = true;
        done(njLib._prettifyError(self.path, self.env.opts.dev, err), res);
        return;
      }
      done(err, res);
    });
  }

  private writesContext: boolean | undefined;

  /**
   * Whether this template's compiled code can write its context: a
   * top-level set, macro or import (Context#setVariable / addExport), or an
   * extends (the parent template then runs on this context). A template
   * that cannot is handed the includer's object itself; one that can gets
   * a child of it. Read from the compiled code once.
   */
  private writes(self: NjTemplate): boolean {
    if (this.writesContext === undefined) {
      const code = [self.rootRenderFunc, ...Object.values(self.blocks as Record<string, unknown>)].map((f) => String(f)).join('\n');
      this.writesContext = /context\.(setVariable|addExport)\(|parentTemplate/.test(code);
    }
    return this.writesContext;
  }

  getExported(ctx?: unknown, parentFrame?: unknown, cb?: unknown): void {
    const stock = nunjucks.Template.prototype as unknown as { getExported(...a: unknown[]): void };
    // With context, the first argument is the importer's variables: maybe inherited, so flattened.
    stock.getExported.call(this, typeof ctx === 'object' && ctx !== null ? flat(ctx as Vars) : ctx, parentFrame, cb);
  }
}
