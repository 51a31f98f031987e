/* Entry point of forge's native data path. The addon is mechanism only (send
 * these bytes, wait for that datagram); every decision stays in TypeScript. */
#include "forge_native.h"

napi_value forge_add_function(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value f;
  FORGE_NAPI(env, napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f));
  FORGE_NAPI(env, napi_set_named_property(env, exports, name, f));
  return exports;
}

int forge_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
    napi_throw_type_error(env, "FORGE_NATIVE", usage);
    return 0;
  }
  return 1;
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
  if (forge_tftp_init(env, exports) == NULL) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
