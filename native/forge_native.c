/* Entry point of forge's native data path. The addon is mechanism only (send
 * these bytes, wait for that datagram); every decision stays in TypeScript. */
#include "forge_native.h"

napi_value forge_add_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  FORGE_NAPI(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f));
  FORGE_NAPI(env, napi_set_named_property(env, exports, name, f));
  return exports;
}

static napi_value abi_version(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  FORGE_NAPI(env, napi_create_uint32(env, FORGE_NATIVE_ABI, &v));
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  if (forge_add_function(env, exports, "abiVersion", abi_version) == NULL) return NULL;
  /* Parts register here, one line each (TEAM.md). */
  if (forge_sendfile_init(env, exports) == NULL) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
