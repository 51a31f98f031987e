/**
 * Charts for docs/benchmarks.md: grouped bar charts as SVG, forge beside
 * each peer, drawn from the figures the bench recorded in docs/bench/AREA.md
 * (the markdown tables are the source of truth, so charts can be redrawn
 * without running the bench again: `node dist/bench/charts.js`). run.ts
 * calls writeCharts() after every run. Pure string building, no dependencies.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

export interface Series {
  name: string;
  /** One value per group (NaN: not measured). */
  values: number[];
}

export interface ChartSpec {
  title: string;
  /** Axis label, e.g. "DORA/s (higher is better)". */
  unit: string;
  groups: string[];
  series: Series[];
}

/** forge's series in blues, peers in other colours. */
const FORGE_COLORS = ['#0b5cad', '#5b8fd0', '#9bbbe6'];
const PEER_COLORS = ['#d9822b', '#8c6bb1', '#2a9d8f', '#b3261e'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  if (v === 0) return '0';
  if (v >= 100) return String(Math.round(v));
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

/** A grouped bar chart; forge's series first and in blue, peers in other colours. */
export function barChart(c: ChartSpec): string {
  const W = 760;
  const left = 70;
  const right = 20;
  const top = 46;
  const plotH = 220;
  const bottom = 64;
  const H = top + plotH + bottom;
  const max = niceMax(Math.max(...c.series.flatMap((s) => s.values.filter(Number.isFinite))));
  const gw = (W - left - right) / c.groups.length;
  const bw = Math.min(46, (gw * 0.8) / c.series.length);
  const y = (v: number): number => top + plotH - (v / max) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui, sans-serif" font-size="12" role="img" aria-label="${esc(c.title)}">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${left}" y="22" font-size="15" font-weight="600">${esc(c.title)}</text>`,
    `<text x="${left}" y="38" fill="#5b6670">${esc(c.unit)}</text>`,
  ];
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    out.push(`<line x1="${left}" x2="${W - right}" y1="${y(v)}" y2="${y(v)}" stroke="${i === 0 ? '#888' : '#e5e9ed'}"/>`);
    out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#5b6670">${fmt(v)}</text>`);
  }
  let peer = 0;
  let own = 0;
  const color = new Map<string, string>();
  for (const s of c.series) color.set(s.name, s.name.startsWith('forge') ? FORGE_COLORS[own++ % FORGE_COLORS.length]! : PEER_COLORS[peer++ % PEER_COLORS.length]!);
  c.groups.forEach((g, gi) => {
    const gx = left + gi * gw + (gw - bw * c.series.length) / 2;
    c.series.forEach((s, si) => {
      const v = s.values[gi] ?? NaN;
      const x = gx + si * bw;
      if (Number.isFinite(v)) {
        out.push(`<rect x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(bw - 3).toFixed(1)}" height="${(top + plotH - y(v)).toFixed(1)}" fill="${color.get(s.name)}"><title>${esc(`${s.name}, ${g}: ${fmt(v)}`)}</title></rect>`);
        out.push(`<text x="${(x + (bw - 3) / 2).toFixed(1)}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${fmt(v)}</text>`);
      }
    });
    out.push(`<text x="${(left + gi * gw + gw / 2).toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${esc(g)}</text>`);
  });
  // Legend.
  let lx = left;
  for (const s of c.series) {
    out.push(`<rect x="${lx}" y="${H - 22}" width="12" height="12" fill="${color.get(s.name)}"/>`, `<text x="${lx + 16}" y="${H - 12}">${esc(s.name)}</text>`);
    lx += 26 + s.name.length * 7;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Rows of the first markdown table after `after` (header row first, separator dropped). */
export function tableAfter(md: string, after: string | RegExp): string[][] {
  const at = typeof after === 'string' ? md.indexOf(after) : md.search(after);
  if (at < 0) return [];
  const lines = md.slice(at).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  if (start < 0) return [];
  const rows: string[][] = [];
  for (const l of lines.slice(start)) {
    if (!l.startsWith('|')) break;
    if (/^\|[-:| ]+\|$/.test(l)) continue;
    rows.push(l.slice(1, -1).split('|').map((c) => c.trim()));
  }
  return rows;
}

const num = (s: string | undefined): number => {
  const m = /-?\d+(?:\.\d+)?/.exec((s ?? '').replace(/\*/g, ''));
  return m === null ? NaN : Number(m[0]);
};

/** Pivot rows (group column, series column, value column) into a chart. */
function pivot(rows: string[][], group: number, series: number, value: number): { groups: string[]; series: Series[] } {
  const groups = [...new Set(rows.map((r) => r[group] ?? ''))];
  const names = [...new Set(rows.map((r) => r[series] ?? ''))];
  return {
    groups,
    series: names.map((n) => ({ name: n, values: groups.map((g) => num(rows.find((r) => r[group] === g && r[series] === n)?.[value])) })),
  };
}

/** Charts from the recorded sections; file name (docs/bench/NAME.svg) -> SVG. Missing sections draw nothing. */
export function chartsFrom(sections: Partial<Record<string, string>>): Map<string, { title: string; svg: string; area: string }> {
  const out = new Map<string, { title: string; svg: string; area: string }>();
  const add = (area: string, name: string, c: ChartSpec): void => {
    if (c.groups.length > 0 && c.series.some((s) => s.values.some(Number.isFinite))) out.set(name, { title: c.title, svg: barChart(c), area });
  };
  const dhcp = sections['dhcp'];
  if (dhcp !== undefined) {
    // The best-rate table: one row per server, a column per repeat, then the best of all; under a
    // CPU budget (there the server, not the machine, saturates) the rate each server achieved at the
    // highest offered rate, one bullet per server, when no server had a clean run to chart.
    const budgeted = /held to ([\d.]+) of a core/.exec(dhcp);
    const part = budgeted === null ? dhcp : dhcp.slice(budgeted.index);
    const table = tableAfter(part, '| server | repeat 1');
    const head = table[0] ?? [];
    const rows = table.slice(1);
    const best = rows.map((r) => ({ name: r[0] ?? '', values: r.slice(1).map((c) => (c.startsWith('none') ? NaN : num(c))) }));
    const at = budgeted === null ? null : /Achieved at the highest offered rate \((\d+)\/s[^\n]*\n\n((?:- [^\n]*\n)+)/.exec(part);
    if (at !== null && budgeted !== null && !best.some((s) => s.values.some(Number.isFinite))) {
      const series = [...at[2]!.matchAll(/^- ([\w-]+): (.*\/s.*)$/gm)].map((m) => ({ name: m[1]!, values: [...m[2]!.matchAll(/([\d.]+)\/s/g)].map((v) => Number(v[1])) }));
      add('dhcp', 'dhcp-dora', {
        title: `DHCP: DORA exchanges per second achieved at ${at[1]} offered, each server held to ${budgeted[1]} of a core (perfdhcp, 20,000 clients)`,
        unit: 'DORA/s; higher is better',
        groups: (series[0]?.values ?? []).map((_, i) => `repeat ${i + 1}`),
        series,
      });
    } else {
      add('dhcp', 'dhcp-dora', {
        title: `DHCP: best DORA exchanges per second with drops under 5 % (perfdhcp, 20,000 clients${budgeted === null ? '' : `, each server held to ${budgeted[1]} of a core`})`,
        unit: 'DORA/s; higher is better',
        groups: head.slice(1),
        // "none under 5 %" is no clean run: no bar (its 5 is the threshold, not a rate).
        series: best,
      });
    }
  }
  const tftp = sections['tftp'];
  if (tftp !== undefined) {
    const rows = tableAfter(tftp, '| server | ws 1').slice(1);
    const groups = ['windowsize 1', 'windowsize 8', 'windowsize 16'];
    add('tftp', 'tftp-64mib', {
      title: 'TFTP: 64 MiB file, median transfer time (atftp)',
      unit: 'seconds; lower is better',
      groups,
      // Columns: wall, CPU, wall, CPU, wall, CPU (lock-step-only servers have 'n/a' at ws 8 and 16).
      series: rows.map((r) => ({ name: r[0] ?? '', values: [num(r[1]), num(r[3]), num(r[5])] })),
    });
  }
  const pxe = sections['pxe'];
  if (pxe !== undefined) {
    const rows = tableAfter(pxe, '| repeat | server |').slice(1);
    const p = pivot(rows, 0, 1, 5);
    add('pxe', 'pxe-1000', { title: 'PXE clients at once: time until all have their initrd', unit: 'seconds by repeat; lower is better', groups: p.groups.map((g) => `repeat ${g}`), series: p.series });
  }
  const boot = sections['boot'];
  if (boot !== undefined) {
    const rows = tableAfter(boot, '| path |').slice(1);
    add('boot', 'boot-kernel', {
      title: 'Boot: power-on to installer kernel start (same VM)',
      unit: 'seconds; lower is better',
      groups: ['power-on -> kernel', 'first boot file -> kernel'],
      series: rows.map((r) => ({ name: bootSeries(r[0] ?? ''), values: [num(r[2]), num(r[3])] })),
    });
  }
  const agent = sections['agent'];
  if (agent !== undefined) {
    const rows = tableAfter(agent, '| case |').slice(1);
    add('agent', 'agent-start', {
      title: 'forge-agent: time to the installer domain running',
      unit: 'seconds, median; lower is better',
      groups: ['median', 'min', 'max'],
      series: rows.map((r) => ({ name: (r[0] ?? '').replace(/^forge-agent, (cold|warm) cache.*/, 'forge-agent $1').replace(/^virt-install.*/, 'virt-install'), values: [num(r[1]), num(r[2]), num(r[3])] })),
    });
  }
  return out;
}

/** Writes docs/bench/*.svg from docs/bench/*.md; returns area -> markdown image lines. */
/** Short chart names for the boot paths (this stop's and older recorded sections). */
function bootSeries(path: string): string {
  if (/^forge:.*--ipv6-ra off/.test(path)) return 'forge, no RA';
  if (/^dnsmasq:.*RA/.test(path)) return 'dnsmasq + RA';
  if (/^(\w+):.*pxelinux.*forge TFTP/.test(path)) return 'forge (pxelinux/TFTP)';
  if (/^forge: iPXE.*radvd/.test(path)) return 'forge (iPXE/HTTP) + RA';
  if (/^forge: iPXE/.test(path)) return 'forge (iPXE/HTTP)';
  if (/^dnsmasq:/.test(path)) return 'dnsmasq (pxelinux/TFTP)';
  return path;
}

export function writeCharts(sectionDir: string): Map<string, string[]> {
  const sections: Record<string, string> = {};
  for (const a of ['core', 'render', 'dhcp', 'tftp', 'boot', 'pxe', 'agent']) {
    const f = `${sectionDir}/${a}.md`;
    if (existsSync(f)) sections[a] = readFileSync(f, 'utf8');
  }
  const links = new Map<string, string[]>();
  for (const [name, c] of chartsFrom(sections)) {
    writeFileSync(`${sectionDir}/${name}.svg`, c.svg);
    links.set(c.area, [...(links.get(c.area) ?? []), `![${c.title}](bench/${name}.svg)`]);
  }
  return links;
}

/** Put each area's charts right under its heading. */
export function withCharts(section: string, images: string[] | undefined): string {
  if (images === undefined || images.length === 0) return section;
  const nl = section.indexOf('\n');
  return nl < 0 ? `${section}\n\n${images.join('\n')}` : `${section.slice(0, nl)}\n\n${images.join('\n\n')}\n${section.slice(nl)}`;
}

const root = new URL('../../', import.meta.url).pathname;
if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop() ?? '-')) {
  const n = writeCharts(`${root}docs/bench`);
  console.error(`wrote ${[...n.values()].flat().length} charts into docs/bench/`);
}
