/** Bench charts: drawn from the recorded tables, forge beside each peer, valid SVG (checked by xmllint where present). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { barChart, chartsFrom, tableAfter, withCharts } from '../../bench/charts.js';

const docs = new URL('../../../docs/bench/', import.meta.url).pathname;

test('the recorded DHCP table becomes a chart with one bar per server and rate, values from the table', () => {
  const md = '## DHCP\n\n| offered rate (DORA/s) | server | achieved DORA/s |\n|---:|---|---:|\n| 1000 | forge | 996 |\n| 1000 | dnsmasq | 296 |\n| 2000 | forge | 1967 |\n| 2000 | dnsmasq | 302 |\n';
  assert.deepEqual(tableAfter(md, '| offered rate').slice(1), [['1000', 'forge', '996'], ['1000', 'dnsmasq', '296'], ['2000', 'forge', '1967'], ['2000', 'dnsmasq', '302']]);
  const c = chartsFrom({ dhcp: md }).get('dhcp-dora');
  assert.ok(c !== undefined);
  const bars = [...c.svg.matchAll(/<title>([^<]+)<\/title><\/rect>/g)].map((m) => m[1]);
  assert.deepEqual(bars, ['forge, 1000/s offered: 996', 'dnsmasq, 1000/s offered: 296', 'forge, 2000/s offered: 1967', 'dnsmasq, 2000/s offered: 302']);
  // Bar heights are proportional to the values.
  const h = [...c.svg.matchAll(/height="([\d.]+)" fill="[^"]+"><title>/g)].map((m) => Number(m[1]));
  assert.ok(Math.abs(h[0]! / h[2]! - 996 / 1967) < 0.01, `${h}`);
  assert.match(withCharts('## DHCP\n\ntext', ['![x](bench/dhcp-dora.svg)']), /^## DHCP\n\n!\[x\]\(bench\/dhcp-dora\.svg\)\n\n\ntext$/);
});

test('every area with a peer gets a chart from the committed figures, and the SVG is well-formed XML', () => {
  const sections = Object.fromEntries(['dhcp', 'tftp', 'boot', 'agent'].map((a) => [a, readFileSync(`${docs}${a}.md`, 'utf8')]));
  const charts = chartsFrom(sections);
  assert.deepEqual([...charts.keys()].sort(), ['agent-start', 'boot-kernel', 'dhcp-dora', 'tftp-64mib']);
  for (const [name, c] of charts) {
    assert.match(c.svg, /forge/, `${name} shows forge`);
    assert.ok(/tftpd-hpa|dnsmasq|virt-install/.test(c.svg), `${name} shows a peer`);
    assert.equal(c.svg, readFileSync(`${docs}${name}.svg`, 'utf8'), `docs/bench/${name}.svg is current (node dist/bench/run.js --assemble)`);
    if (existsSync('/usr/bin/xmllint')) execFileSync('xmllint', ['--noout', '-'], { input: c.svg });
  }
  assert.doesNotThrow(() => barChart({ title: 't', unit: 'u', groups: ['a'], series: [{ name: 'forge', values: [NaN] }] }));
});
