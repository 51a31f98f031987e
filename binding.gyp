# The optional native data path of forge (N-API, plain C, no dependency).
# Built by `npm run build:native` (part of `npm run build`) and by the
# package's install script; forge runs without it (server/native/index.ts).
{
  "targets": [
    {
      "target_name": "forge_native",
      "sources": [
        "native/forge_native.c",
        "native/sendfile.c",
        "native/tftp.c"
      ],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
