/**
 * Configuration layers: the CLI's environment and serve's never share a name, and values of the
 * wrong shape are refused naming the key and the rule (issue 11).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLIENT_ENV, CONFIG_SCHEMA, envName, loadConfig } from '../../server/config.js';
import { ForgeError } from '../../server/errors.js';

// /etc/forge/forge.json must not leak into the test: an explicit empty config file.
const emptyFile = join(mkdtempSync(join(tmpdir(), 'forge-cfg-')), 'forge.json');
writeFileSync(emptyFile, '{}');
const load = (env: NodeJS.ProcessEnv, flags: Record<string, unknown> = {}): ReturnType<typeof loadConfig> => loadConfig({ env, flags, file: emptyFile });

test('no serve key reads an environment variable a client reads', () => {
  for (const key of Object.keys(CONFIG_SCHEMA)) {
    assert.ok(!(CLIENT_ENV as readonly string[]).includes(envName(key)), `${key} -> ${envName(key)} collides with a client variable`);
  }
  assert.equal(envName('server'), 'FORGE_SERVE_SERVER');
  assert.equal(envName('http_port'), 'FORGE_HTTP_PORT');
});

test('FORGE_SERVER exported for the CLI does not become serve\'s server key', () => {
  const cfg = load({ FORGE_SERVER: 'http://127.0.0.1:8080', FORGE_TOKEN: 'x' });
  assert.equal(cfg.server, '');
  assert.equal(load({ FORGE_SERVE_SERVER: 'forge.example:8080' }).server, 'forge.example:8080');
});

const refused = (fn: () => unknown, key: string, rule: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ForgeError);
    assert.equal(e.code, 'CONFIG_INVALID');
    assert.equal(e.field, key);
    assert.match(e.message, new RegExp(`^${key} \\(`));
    assert.match(e.message, rule);
    return true;
  });
};

test('a URL where host[:port] is expected is refused with the key and the rule', () => {
  refused(() => load({ FORGE_SERVE_SERVER: 'http://127.0.0.1:8080' }), 'server', /host or host:port, not a URL/);
  refused(() => load({}, { server: 'http://10.0.0.1' }), 'server', /not a URL/);
  refused(() => load({}, { server: '10.0.0.1:99999' }), 'server', /port .* 1-65535/);
  refused(() => load({}, { server: 'bad host' }), 'server', /host or host:port/);
  for (const ok of ['10.96.0.1', '10.96.0.1:8080', 'forge.example', 'forge.example:80', '[fd00::1]:8080', '']) {
    assert.equal(load({}, { server: ok }).server, ok);
  }
});

test('addresses, address lists and ports are checked by shape', () => {
  refused(() => load({}, { listen: 'http://0.0.0.0' }), 'listen', /IP address/);
  refused(() => load({}, { next_server: 'forge.example' }), 'next_server', /IPv4 address/);
  refused(() => load({ FORGE_DHCP_ROUTER: '10.0.0.300' }), 'dhcp_router', /IPv4/);
  refused(() => load({ FORGE_DHCP_DNS: '10.0.0.1 dns.example' }), 'dhcp_dns', /"dns.example"/);
  refused(() => load({}, { http_port: '70000' }), 'http_port', /0-65535/);
  const cfg = load({ FORGE_DHCP_DNS: '10.0.0.1 10.0.0.2' }, { listen: '127.0.0.1', next_server: '10.0.0.1', http_port: '0' });
  assert.deepEqual(cfg.dhcp_dns, ['10.0.0.1', '10.0.0.2']);
  assert.equal(cfg.listen, '127.0.0.1');
});

test('server_name: the short host name by default, a name a subnet can list, else refused naming the key', () => {
  assert.equal(load({}).server_name, hostname().split('.')[0]);
  assert.equal(load({ FORGE_SERVER_NAME: 'rack2' }).server_name, 'rack2');
  assert.equal(load({}, { server_name: 'boot-a.1' }).server_name, 'boot-a.1');
  refused(() => load({}, { server_name: 'two words' }), 'server_name', /letters, digits/);
  refused(() => load({}, { server_name: '' }), 'server_name', /1-128/);
});
