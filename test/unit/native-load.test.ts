// The optional native data path loads where it was built, and CI never runs on
// the JavaScript fallback by accident: with CI=true the addon must load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { native, nativeStatus, NATIVE_ABI } from '../../server/native/index.js';

test('native addon: loaded in CI, with the ABI the TypeScript side expects', (t) => {
  if (!nativeStatus.loaded) {
    if (process.env.CI === 'true' && process.env.FORGE_NATIVE !== '0') {
      assert.fail(`the native addon must load in CI: ${nativeStatus.reason}`);
    }
    t.skip(`native addon not in use: ${nativeStatus.reason}`);
    return;
  }
  assert.ok(native !== null);
  assert.equal(native.abiVersion(), NATIVE_ABI);
});
