/**
 * `npm run bench [-- AREA...]`: runs the benchmark of each area (bench/AREA.ts
 * exports `run(): Promise<string>`, a markdown section), stores each section in
 * docs/bench/AREA.md and assembles docs/benchmarks.md from every stored
 * section, so running one area refreshes only its own figures. Each area
 * compares forge with the established tool on the same machine, in one run.
 * Charts (bench/charts.ts, SVG) are drawn from the recorded tables each time;
 * `node dist/bench/run.js --assemble` redraws them without measuring.
 */
import { cpus, totalmem } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { withCharts, writeCharts } from './charts.js';

const AREAS = ['core', 'store', 'servers', 'render', 'dhcp', 'tftp', 'boot', 'pxe', 'agent', 'build'] as const;
const root = new URL('../../', import.meta.url).pathname;
const sectionDir = `${root}docs/bench`;

function machine(): string {
  let kernel = '';
  try {
    kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  } catch {
    /* not fatal */
  }
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${kernel}, Node ${process.version}`;
}

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  // --assemble: redraw the charts and rebuild docs/benchmarks.md from the recorded sections, run nothing.
  const assembleOnly = asked.length === 1 && asked[0] === '--assemble';
  const areas = assembleOnly ? [] : asked.length > 0 ? asked : [...AREAS];
  mkdirSync(sectionDir, { recursive: true });
  let failed = 0;
  for (const area of areas) {
    if (!(AREAS as readonly string[]).includes(area)) {
      console.error(`unknown benchmark area "${area}" (one of ${AREAS.join(', ')})`);
      process.exitCode = 2;
      return;
    }
    const started = Date.now();
    console.error(`bench ${area}: running`);
    try {
      const mod = (await import(`./${area}.js`)) as { run?: () => Promise<string> };
      if (typeof mod.run !== 'function') throw new Error(`bench/${area}.ts exports no run()`);
      const section = await mod.run();
      const stamp = `\n\n_Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${machine()}; took ${((Date.now() - started) / 1000).toFixed(0)} s._\n`;
      writeFileSync(`${sectionDir}/${area}.md`, section.trimEnd() + stamp);
      console.error(`bench ${area}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } catch (e) {
      failed++;
      console.error(`bench ${area}: FAILED: ${(e as Error).stack ?? String(e)}`);
    }
  }
  const parts = [
    '# forge benchmarks',
    '',
    'Produced by `npm run bench` (or `npm run bench -- AREA`), which runs forge and the established tool side by side',
    'on the same machine in the same run. Figures are measurements, not pass/fail criteria; the machine is small',
    '(2 cores) and shared, so read ratios rather than absolute numbers. Each section says when and where it was measured,',
    'and the load average beside each figure; forge and the rival run interleaved so that both see the same load.',
    '',
    'What the bench needs (not installed by CI, which does not run it): Debian 12 with `apt-get install perfdhcp time',
    'kea-dhcp4-server dnsmasq tftpd-hpa atftp tcpdump qemu-system-x86 ipxe-qemu pxelinux syslinux-common',
    'debian-installer-12-netboot-amd64 virtinst libvirt-daemon-system vmdb2 debootstrap mmdebstrap` (most are already in .ci/apt-packages.txt for the',
    'tests), run as root (network namespaces). atftpd and nginx (and radvd, when it is not installed: forge\'s ipv6_ra uses the',
    'installed one) are fetched by the bench itself with `apt-get download` and unpacked with `dpkg -x` into',
    '~/.cache/forge-bench/debs (FORGE_BENCH_CACHE): atftpd conflicts with tftpd-hpa as a package, and installing nginx would',
    'start a system-wide daemon. VM parts take one of',
    'the machine-wide VM slots when run through /work/wt/vm.sh on the shared development machine.',
    '',
  ];
  const charts = writeCharts(sectionDir);
  for (const area of AREAS) {
    const f = `${sectionDir}/${area}.md`;
    parts.push(existsSync(f) ? withCharts(readFileSync(f, 'utf8').trimEnd(), charts.get(area)) : `## ${area}\n\n_Not measured yet._`, '');
  }
  // Hand-written notes (profiles, what limits the figures) follow the measured sections.
  const notes = `${sectionDir}/notes.md`;
  if (existsSync(notes)) parts.push(readFileSync(notes, 'utf8').trimEnd(), '');
  writeFileSync(`${root}docs/benchmarks.md`, parts.join('\n'));
  if (failed > 0) process.exitCode = 1;
}

await main();
