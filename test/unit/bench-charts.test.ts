/** Bench charts: drawn from the recorded tables, forge beside each peer, valid SVG (checked by xmllint where present). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { barChart, chartsFrom, tableAfter, withCharts } from '../../bench/charts.js';

const docs = new URL('../../../docs/bench/', import.meta.url).pathname;

test('the recorded DHCP best-rate table becomes a chart with one bar per server and repeat, values from the table', () => {
  const md =
    '## DHCP\n\n| server | repeat 1 | repeat 2 | best of all |\n|---|---:|---:|---:|\n' +
    '| forge | 1967 (offered 2000, load 3.1) | none under 5 % | 1967 |\n| kea | 1999 (offered 2000, load 3.0) | 2998 (offered 3000, load 2.9) | 2998 |\n';
  assert.deepEqual(tableAfter(md, '| server | repeat 1').slice(1), [
    ['forge', '1967 (offered 2000, load 3.1)', 'none under 5 %', '1967'],
    ['kea', '1999 (offered 2000, load 3.0)', '2998 (offered 3000, load 2.9)', '2998'],
  ]);
  const c = chartsFrom({ dhcp: md }).get('dhcp-dora');
  assert.ok(c !== undefined);
  const bars = [...c.svg.matchAll(/<title>([^<]+)<\/title><\/rect>/g)].map((m) => m[1]);
  // A repeat without a clean rate has no bar (NaN), the others carry the table's value.
  assert.deepEqual(bars, ['forge, repeat 1: 1967', 'kea, repeat 1: 1999', 'kea, repeat 2: 2998', 'forge, best of all: 1967', 'kea, best of all: 2998']);
  // Bar heights are proportional to the values.
  const h = [...c.svg.matchAll(/height="([\d.]+)" fill="[^"]+"><title>/g)].map((m) => Number(m[1]));
  assert.ok(Math.abs(h[0]! / h[2]! - 1967 / 2998) < 0.01, `${h}`);
  assert.match(withCharts('## DHCP\n\ntext', ['![x](bench/dhcp-dora.svg)']), /^## DHCP\n\n!\[x\]\(bench\/dhcp-dora\.svg\)\n\n\ntext$/);
});

test('every area with a peer gets a chart from the committed figures, and the SVG is well-formed XML', () => {
  const sections = Object.fromEntries(['dhcp', 'tftp', 'boot', 'pxe', 'agent'].map((a) => [a, readFileSync(`${docs}${a}.md`, 'utf8')]));
  const charts = chartsFrom(sections);
  assert.deepEqual([...charts.keys()].sort(), ['agent-start', 'boot-kernel', 'dhcp-dora', 'pxe-1000', 'tftp-64mib']);
  for (const [name, c] of charts) {
    assert.match(c.svg, /forge/, `${name} shows forge`);
    assert.ok(/tftpd-hpa|atftpd|dnsmasq|kea|virt-install/.test(c.svg), `${name} shows a peer`);
    assert.equal(c.svg, readFileSync(`${docs}${name}.svg`, 'utf8'), `docs/bench/${name}.svg is current (node dist/bench/run.js --assemble)`);
    if (existsSync('/usr/bin/xmllint')) execFileSync('xmllint', ['--noout', '-'], { input: c.svg });
  }
  assert.doesNotThrow(() => barChart({ title: 't', unit: 'u', groups: ['a'], series: [{ name: 'forge', values: [NaN] }] }));
});
