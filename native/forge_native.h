/* Shared declarations of forge's native data path (see binding.gyp). Each part
 * of the addon exports its functions from one init function listed here. */
#ifndef FORGE_NATIVE_H
#define FORGE_NATIVE_H
#include <node_api.h>

/* Bumped when a part changes its contract with server/native/index.ts. */
#define FORGE_NATIVE_ABI 3

/* Throw a JavaScript Error for a failed N-API call and return NULL. */
#define FORGE_NAPI(env, call)                                                  \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      napi_throw_error((env), "FORGE_NATIVE", "N-API call failed: " #call);    \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

napi_value forge_add_function(napi_env env, napi_value exports, const char *name, napi_callback fn);

/* The first n arguments of a call into argv, or a TypeError with `usage` thrown and 0 returned. */
int forge_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage);

/* native/sendfile.c: sendfile(2) for HTTP boot file bodies. */
napi_value forge_sendfile_init(napi_env env, napi_value exports);

/* native/tftp.c: the TFTP data pump (ACK in, window out, off the event loop). */
napi_value forge_tftp_init(napi_env env, napi_value exports);

#endif
