/**
 * A store with some methods replaced: the layers of store/layers.ts (the
 * system index, the object cache) each answer or follow a few calls and pass
 * every other one to the store beneath. A Proxy, so Store methods added later
 * pass through without being listed in each layer.
 */
import type { Store } from './store.js';

export function overlayStore(store: Store, overrides: Partial<Store>): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (typeof prop === 'string' && Object.prototype.hasOwnProperty.call(overrides, prop)) return overrides[prop as keyof Store];
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
