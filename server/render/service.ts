/**
 * Autoinstall rendering against the store: load the object and its chain,
 * blend (core/blend.ts, the same variables `dumpvars` prints), pick the
 * template and render it strictly. `validate` also runs the installer's own
 * structural rules on each result (render/checks/). Shared by the HTTP routes, `forge
 * validate` and `forge template show`.
 */
import { blendChainOnce, blendProfile, blendSystem } from '../core/blend.js';
import type { Vars } from '../core/blend.js';
import { BREEDS } from '../core/model.js';
import { installerFormat, type InstallerFormat } from '../core/installer.js';
import { ForgeError } from '../errors.js';
import { withoutSecrets } from '../core/secrets.js';
import { coalesced, slicer } from '../core/yield.js';
import type { Settings, System } from '../core/model.js';
import type { Store } from '../store/store.js';
import { chainOf, openInstallToken } from '../catalog.js';
import { Renderer, newRenderMemo, type FileUse, type RenderResult, type RenderTarget } from './renderer.js';
import { templateContext } from './vars.js';
import { problemOf, renderAndCheck, type TargetKind, type ValidateItem, type ValidateProblem } from './validate-item.js';
import { RenderPool, type WorkerFault } from './validate-pool.js';

export type { TargetKind } from './validate-item.js';

/** The shipped template per installer (core/installer.ts: breed + os_version), used when no profile or system names one. */
export const DEFAULT_TEMPLATES: Record<InstallerFormat, string> = {
  kickstart: 'kickstart/default.ks',
  preseed: 'preseed/default.seed',
  autoyast: 'autoyast/default.xml',
  autoinstall: 'subiquity/user-data.yaml',
  agama: 'agama/profile.json',
  generic: 'generic/script.sh',
};

/** The NoCloud seed files forge serves under /cloud-init/{system,profile}/NAME/. */
export const CLOUD_INIT_FILES = ['user-data', 'meta-data', 'vendor-data', 'network-config'] as const;
export type CloudInitFile = (typeof CLOUD_INIT_FILES)[number];

export interface RenderOptions {
  /** false: every secret value emptied (anonymous profile renders). Default true. */
  secrets?: boolean;
}

export interface Prepared {
  templateName: string;
  vars: Vars;
  target: RenderTarget;
}

export function templateNameFor(vars: Vars): string {
  const t = vars['autoinstall'];
  if (typeof t === 'string' && t !== '' && t !== '<<inherit>>') return t;
  const breed = vars['breed'];
  const d = typeof breed === 'string' && (BREEDS as readonly string[]).includes(breed)
    ? DEFAULT_TEMPLATES[installerFormat(breed, typeof vars['os_version'] === 'string' ? vars['os_version'] : '')]
    : undefined;
  if (d === undefined) throw new ForgeError('TEMPLATE_NOT_FOUND', `no autoinstall template set and no default for breed "${String(breed)}"`, { field: 'autoinstall' });
  return d;
}

/** Systems read per page by validate (small: a page is read without a yield, as in api/data.ts). */
const VALIDATE_PAGE = 200;
/** Objects per batch sent to a render worker (about 10 ms of rendering: few messages, little waiting at the end). */
const VALIDATE_BATCH = 50;

export interface ValidateOptions {
  /** Render workers of a validate run (render/validate-pool.ts; config validate_workers). Default 0: this thread. */
  workers?: number;
  /** Systems in the store when known without a query (the server's index), for progress counts. */
  systemCount?: () => number | undefined;
  /** A render worker failed (its objects are rendered in this thread instead). */
  onWorkerFailure?: (e: Error) => void;
  /** Tests only: make render workers die mid-run (render/validate-pool.ts WorkerFault). */
  workerFaults?: WorkerFault[];
}

export class AutoinstallService {
  private readonly workers: number;
  private readonly systemCount: () => number | undefined;
  private readonly onWorkerFailure: (e: Error) => void;
  private readonly workerFaults: WorkerFault[];

  constructor(
    private readonly store: Store,
    private readonly settings: Settings,
    readonly renderer: Renderer,
    opts: ValidateOptions = {},
  ) {
    this.workers = opts.workers ?? 0;
    this.systemCount = opts.systemCount ?? (() => undefined);
    this.onWorkerFailure = opts.onWorkerFailure ?? (() => undefined);
    this.workerFaults = opts.workerFaults ?? [];
  }

  /**
   * Load and blend; throws NOT_FOUND / REFERENCE_MISSING like the API.
   * `secrets: false` empties every secret value (anonymous profile renders).
   */
  async prepare(kind: TargetKind, name: string, opts: RenderOptions = {}): Promise<Prepared> {
    const p = await this.blended(kind, name, opts);
    return { ...p, vars: templateContext(p.vars) };
  }

  /** prepare() without the template context (validate builds that where it renders: render/validate-item.ts). */
  private async blended(kind: TargetKind, name: string, opts: RenderOptions = {}): Promise<Prepared> {
    if (kind === 'system') return this.blendedSystem(await this.store.mustGet('system', name));
    await this.store.mustGet('profile', name);
    const chain = await chainOf(this.store, name);
    const blended = blendProfile(chain.profiles, chain.distro, this.settings);
    const vars = opts.secrets === false ? withoutSecrets(blended) : blended;
    return {
      templateName: templateNameFor(vars),
      vars,
      target: { kind, name, system: '', profiles: chain.profiles.map((p) => p.name), distro: chain.distro.name },
    };
  }

  /**
   * The blend of a system already read (validate reads them a page at a time). `chains`: the
   * chain blends of one validate run by profile (one snapshot, like its RenderMemo).
   */
  private async blendedSystem(sys: System, chains?: Map<string, Readonly<Vars>>): Promise<Prepared> {
    const chain = await chainOf(this.store, sys.profile);
    let chainVars = chains?.get(sys.profile);
    if (chains !== undefined && chainVars === undefined) {
      chainVars = blendChainOnce(chain.profiles, chain.distro, this.settings);
      chains.set(sys.profile, chainVars);
    }
    const vars = blendSystem(sys, chain.profiles, chain.distro, this.settings, await this.store.list('subnet'), await openInstallToken(this.store, this.settings, sys.name), chainVars);
    return {
      templateName: templateNameFor(vars),
      vars,
      target: { kind: 'system', name: sys.name, system: sys.name, profiles: chain.profiles.map((p) => p.name), distro: chain.distro.name },
    };
  }

  async render(kind: TargetKind, name: string, opts: RenderOptions = {}): Promise<RenderResult> {
    const p = await this.prepare(kind, name, opts);
    return this.renderer.render(p.templateName, p.vars, p.target);
  }

  /**
   * One NoCloud seed file. user-data is the object's own template when that
   * is a cloud-init one (subiquity/ or cloud-init/: Ubuntu autoinstall, or a
   * site's), else the plain cloud-config for images; meta-data, vendor-data
   * and network-config come from cloud-init/*.yaml (site-overridable like
   * every template). meta-data's instance-id names the last completed install.
   */
  async renderCloudInit(kind: TargetKind, name: string, file: CloudInitFile, opts: RenderOptions = {}): Promise<RenderResult & { templateName: string }> {
    const p = await this.prepare(kind, name, opts);
    let templateName = `cloud-init/${file}.yaml`;
    if (file === 'user-data') {
      const dir = p.templateName.split('/')[0];
      templateName = dir === 'subiquity' || dir === 'cloud-init' ? p.templateName : 'cloud-init/user-data.yaml';
    }
    const vars = { ...p.vars };
    if (file === 'meta-data') {
      // The id of the last install_done event: stable across reboots, new after
      // each completed install (event ids only grow, pruning old events keeps it).
      const done = kind === 'system' ? (await this.store.listEvents(name)).filter((e) => e.type === 'install_done').pop() : undefined;
      vars['instance_id'] = `forge-${kind === 'system' ? '' : 'profile-'}${name}-${done?.id ?? 0}`;
    }
    return { ...this.renderer.render(templateName, vars, p.target), templateName };
  }

  /** What `forge template show --system/--profile` prints: files in effect and lookup order. */
  async explain(kind: TargetKind, name: string): Promise<ExplainReport> {
    const p = await this.prepare(kind, name);
    const r = this.renderer.explain(p.templateName, p.vars, p.target);
    const report: ExplainReport = {
      kind,
      name,
      template_name: p.templateName,
      snippets: r.snippets.map((s) => ({
        ...s,
        lookup: this.renderer.snippetCandidates(s.name, p.target).map((c) => c.segs.join('/')),
      })),
    };
    if (r.template !== undefined) report.template = r.template;
    if (r.error !== undefined) report.error = r.error.toBody();
    return report;
  }

  /**
   * Render every profile and system; collect every failure (never stops at
   * the first). The server's thread reads and blends, a page at a time and
   * chunked (core/yield.ts); the render workers (render/validate-pool.ts,
   * validate_workers) render and check, so a 100,000-system validate uses the
   * other cores and DHCP/TFTP/HTTP answers never wait on it. With no workers
   * (0) the same steps run in this thread, chunked. One run at a time, shared
   * by callers that ask meanwhile. `onProgress(done, total)`: objects finished
   * so far (a caller that joins a running run sees its counts from then on).
   */
  validate(onProgress?: (done: number, total: number) => void): Promise<ValidateReport> {
    if (onProgress !== undefined) this.progress.add(onProgress);
    return this.validateOnce().finally(() => {
      if (onProgress !== undefined) this.progress.delete(onProgress);
    });
  }

  private readonly progress = new Set<(done: number, total: number) => void>();
  private readonly validateOnce: () => Promise<ValidateReport> = coalesced(() => this.validateAll());

  private async validateAll(): Promise<ValidateReport> {
    const found: { seq: number; problem: ValidateProblem }[] = [];
    let checked = 0;
    let done = 0;
    const slice = slicer();
    // One snapshot of the template files for the whole run (render/renderer.ts RenderMemo); each worker keeps its own.
    const memo = newRenderMemo();
    const chains = new Map<string, Readonly<Vars>>();
    const profiles = await this.store.listNames('profile');
    const systems = this.systemCount();
    // 0: not known (progress shows counts only).
    const total = systems === undefined ? 0 : profiles.length + systems;
    const tell = (n: number): void => {
      done += n;
      for (const f of this.progress) f(done, total === 0 ? 0 : Math.max(total, checked));
    };
    const pool = this.workers > 0 ? new RenderPool(this.workers, this.renderer.roots, this.onWorkerFailure, this.workerFaults) : undefined;
    const inFlight = new Set<Promise<void>>();
    // In this thread (no pool, or a batch the pool could not take): chunked like the reading.
    const here = async (items: ValidateItem[]): Promise<void> => {
      for (const it of items) {
        await slice();
        const p = renderAndCheck(this.renderer, memo, it);
        if (p !== undefined) found.push({ seq: it.seq, problem: p });
        tell(1);
      }
    };
    let batch: ValidateItem[] = [];
    const flush = async (): Promise<void> => {
      if (batch.length === 0) return;
      const items = batch;
      batch = [];
      if (pool === undefined || pool.alive === 0) return here(items);
      await pool.room();
      const job = pool.submit(items).then(
        (a) => {
          found.push(...a.problems);
          tell(items.length);
        },
        () => here(items),
      );
      const tracked = job.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    };
    const run = async (kind: TargetKind, name: string, sys?: System): Promise<void> => {
      await slice();
      const seq = checked++;
      let it: ValidateItem;
      try {
        const p = sys !== undefined ? await this.blendedSystem(sys, chains) : await this.blended(kind, name);
        it = { seq, kind, name, templateName: p.templateName, vars: p.vars, target: p.target };
      } catch (e) {
        found.push({ seq, problem: problemOf(kind, name, e) });
        tell(1);
        return;
      }
      batch.push(it);
      if (batch.length >= VALIDATE_BATCH) await flush();
    };
    try {
      // Profiles by name (one cheap query), each loaded when its turn comes.
      for (const n of profiles) await run('profile', n);
      // Systems a page of documents at a time (one read per page, not one per system).
      for (let after = ''; ;) {
        const page = await this.store.systemDocs({ after, limit: VALIDATE_PAGE });
        // Their install windows in one read too (the object cache keeps them for the renders below).
        await this.store.installWindows(page.map((d) => d.name));
        for (const d of page) {
          let sys: System;
          try {
            sys = JSON.parse(d.data) as System;
          } catch (e) {
            found.push({ seq: checked++, problem: { kind: 'system', name: d.name, code: 'INTERNAL', message: `stored document is not JSON: ${(e as Error).message}` } });
            tell(1);
            continue;
          }
          await run('system', d.name, sys);
        }
        if (page.length < VALIDATE_PAGE) break;
        after = page[page.length - 1]!.name;
      }
      await flush();
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    } finally {
      await pool?.close();
    }
    // The order of the objects, whichever thread rendered each.
    const errors = found.sort((a, b) => a.seq - b.seq).map((f) => f.problem);
    return { ok: errors.length === 0, checked, errors };
  }
}

export interface ExplainReport {
  kind: TargetKind;
  name: string;
  template_name: string;
  template?: FileUse;
  snippets: (FileUse & { lookup: string[] })[];
  error?: ReturnType<ForgeError['toBody']>;
}

export interface ValidateReport {
  ok: boolean;
  checked: number;
  errors: ValidateProblem[];
}
